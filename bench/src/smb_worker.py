# cerfs-bench SMB worker: MS-CER 3.1.7 cycles over SMB with tests/smb/cer_smb_client.py,
# each cycle timed. argv: SMB_DIR PORT CLIENT_ID SUBPATH CYCLES SEED CAB_DIR (real cabs, one
# picked at random per cycle).
# Prints "ready" once connected, waits for a line on stdin, runs, prints one JSON summary.
import json, os, random, sys, time

sys.path.insert(0, sys.argv[1])
import cer_smb_client as c

port, client, sub, cycles, seed, cab_dir = sys.argv[2:8]
client, cycles, seed = int(client), int(cycles), int(seed)
parser = c.build_parser()
args = parser.parse_args(["--port", port, "cycles", "--subpath", sub, "--cab", os.devnull,
                          "--cycles", str(cycles), "--client-id", str(client),
                          "--pattern", "alternate", "--machine", "BENCH%02d" % client])
random.seed(seed)
rng = random.Random(seed)
pool = []
for name in sorted(os.listdir(cab_dir)):
    with open(os.path.join(cab_dir, name), "rb") as f:
        pool.append(f.read())
cabs = [rng.choice(pool) for _ in range(cycles)]
share = c.connect(args, False)
summary = {"cycles": 0, "hits": 0, "cabs_counted": 0, "cabs": [], "crash_lines": [],
           "hits_lines": [], "patterns": {}, "errors": []}
print("ready", flush=True)
sys.stdin.readline()
lat = []
start = time.perf_counter()
for cycle in range(cycles):
    t = time.perf_counter()
    try:
        c.cer_cycle(share, args, cycle, cabs[cycle], summary)
        summary["cycles"] += 1
    except c.SmbError as e:
        summary["errors"].append(str(e))
    lat.append(time.perf_counter() - t)
summary["secs"] = time.perf_counter() - start
share.close()
summary["lat"] = lat
summary["bucket"] = sub
summary["cab_bytes"] = sum(len(b) for b in cabs)
print(json.dumps(summary), flush=True)
