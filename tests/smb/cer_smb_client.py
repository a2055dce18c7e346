#!/usr/bin/env python3
"""A Corporate Error Reporting (MS-CER 1.0) client that speaks real SMB2/3 (smbprotocol).

It does over the network what a Windows CER client does on the share (MS-CER 3.1.7):
read policy.txt, status.txt and count.txt; mkdir each level; copy the cab; update count.txt
(two ways real programs do it); append to crash.log and hits.log when tracking is on.
Every subcommand prints one JSON object on stdout (the tests parse it) and exits 0 when it
could talk to the server, whatever the SMB statuses were; 2 for usage, 1 when it could not
connect.

  cer_smb_client.py --port 4450 cycles --subpath App\\1.0\\Mod\\1.0\\00001234 --cab x.cab
  cer_smb_client.py --port 4450 get policy.txt
  cer_smb_client.py --port 4450 --user ceradmin --password-env PW put s.txt status\\blue\\status.txt
  cer_smb_client.py --port 4450 loop --subpath blue --client-id 1 --round 3 --seed 42

`loop` is the exception to "one JSON object": it prints one JSON line per event, flushed,
for a test that kills the server under it (see cmd_loop).

Requires: pip install smbprotocol==1.17.0
"""

import argparse
import hashlib
import json
import os
import random
import string
import sys
import time
import uuid

from smbprotocol.connection import Connection
from smbprotocol.exceptions import SMBResponseException
from smbprotocol.file_info import (
    FileEndOfFileInformation,
    FileInformationClass,
    FileStandardInformation,
)
from smbprotocol.header import NtStatus
from smbprotocol.open import (
    CreateDisposition,
    CreateOptions,
    DirectoryAccessMask,
    FilePipePrinterAccessMask,
    ImpersonationLevel,
    Open,
    ShareAccess,
    SMB2QueryInfoRequest,
    SMB2QueryInfoResponse,
    SMB2SetInfoRequest,
)
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect

READ = FilePipePrinterAccessMask.FILE_READ_DATA | FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES
WRITE = FilePipePrinterAccessMask.FILE_WRITE_DATA | FilePipePrinterAccessMask.FILE_WRITE_ATTRIBUTES
SHARE_ALL = ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE | ShareAccess.FILE_SHARE_DELETE
DISPOSITIONS = {
    "open": CreateDisposition.FILE_OPEN,
    "create": CreateDisposition.FILE_CREATE,
    "open_if": CreateDisposition.FILE_OPEN_IF,
    "overwrite_if": CreateDisposition.FILE_OVERWRITE_IF,
    "supersede": CreateDisposition.FILE_SUPERSEDE,
}
ABSENT = (NtStatus.STATUS_OBJECT_NAME_NOT_FOUND, NtStatus.STATUS_OBJECT_PATH_NOT_FOUND)
MIB = 1024 * 1024
CHUNK = 60 * 1024


def status_name(code):
    """NTSTATUS as its name (STATUS_ACCESS_DENIED) or hex."""
    for name in dir(NtStatus):
        if name.startswith("STATUS_") and getattr(NtStatus, name) == code:
            return name
    return "0x%08x" % code


class SmbError(Exception):
    """An SMB request failed: which step, which NTSTATUS."""

    def __init__(self, step, path, status):
        super().__init__("%s %s: %s" % (step, path, status_name(status)))
        self.step = step
        self.path = path
        self.status = status

    def as_json(self):
        return {"ok": False, "step": self.step, "path": self.path, "status": status_name(self.status)}


class Share:
    """One SMB session and tree connect to \\\\server\\share."""

    def __init__(self, server, port, share, user, password):
        guest = user is None
        self.conn = Connection(uuid.uuid4(), server, port, require_signing=not guest)
        self.conn.connect(timeout=30)
        # An unknown user name is mapped to the guest (map to guest = Bad User); guest
        # sessions can neither sign nor encrypt.
        self.session = Session(
            self.conn,
            user or "cer-guest-%d" % os.getpid(),
            password if not guest else "guest",
            require_encryption=False,
            auth_protocol="ntlm",
        )
        self.session.connect()
        self.tree = TreeConnect(self.session, r"\\%s\%s" % (server, share))
        self.tree.connect(require_secure_negotiate=not guest)

    def close(self):
        try:
            self.conn.disconnect(True)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass

    def _call(self, step, path, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except SMBResponseException as e:
            raise SmbError(step, path, e.status) from None

    def open(self, path, access, disposition, directory=False, options=0):
        handle = Open(self.tree, path)
        kind = CreateOptions.FILE_DIRECTORY_FILE if directory else CreateOptions.FILE_NON_DIRECTORY_FILE
        self._call(
            "create",
            path,
            handle.create,
            ImpersonationLevel.Impersonation,
            access,
            0,
            SHARE_ALL,
            disposition,
            kind | options,
        )
        return handle

    def close_handle(self, handle):
        self._call("close", handle.file_name, handle.close, False)

    def read_all(self, handle):
        """Reads to the end, as ReadFile does: STATUS_END_OF_FILE is the end, not an error
        (on cerfs a handle that created count.txt reads it empty even if another client's
        count.txt appeared meanwhile; on a plain share another client may have truncated it)."""
        size = self.end_of_file(handle)
        data = b""
        while len(data) < size:
            try:
                chunk = self._call("read", handle.file_name, handle.read, len(data), min(CHUNK, size - len(data)))
            except SmbError as e:
                if e.status == NtStatus.STATUS_END_OF_FILE:
                    break
                raise
            if not chunk:
                break
            data += chunk
        return data

    def write_at(self, handle, offset, data):
        done = 0
        while done < len(data):
            piece = data[done : done + CHUNK]
            self._call("write", handle.file_name, handle.write, piece, offset + done)
            done += len(piece)

    def end_of_file(self, handle):
        req = SMB2QueryInfoRequest()
        req["info_type"] = FileStandardInformation.INFO_TYPE
        req["file_info_class"] = FileStandardInformation.INFO_CLASS
        req["file_id"] = handle.file_id
        req["output_buffer_length"] = 1024

        def query():
            request = self.conn.send(req, self.session.session_id, self.tree.tree_connect_id)
            response = self.conn.receive(request)
            resp = SMB2QueryInfoResponse()
            resp.unpack(response["data"].get_value())
            return resp.parse_buffer(FileStandardInformation)["end_of_file"].get_value()

        return self._call("query-info", handle.file_name, query)

    def set_end_of_file(self, handle, size):
        info = FileEndOfFileInformation()
        info["end_of_file"] = size
        req = SMB2SetInfoRequest()
        req["info_type"] = info.INFO_TYPE
        req["file_info_class"] = info.INFO_CLASS
        req["file_id"] = handle.file_id
        req["buffer"] = info

        def set_info():
            request = self.conn.send(req, self.session.session_id, self.tree.tree_connect_id)
            self.conn.receive(request)

        self._call("set-eof", handle.file_name, set_info)

    # --- whole-file operations -------------------------------------------------------------

    def get(self, path):
        """The file's bytes, or None when it (or its folder) does not exist."""
        try:
            handle = self.open(path, READ, CreateDisposition.FILE_OPEN)
        except SmbError as e:
            if e.status in ABSENT:
                return None
            raise
        try:
            return self.read_all(handle)
        finally:
            self.close_handle(handle)

    def put(self, path, data, disposition="overwrite_if"):
        handle = self.open(path, READ | WRITE, DISPOSITIONS[disposition])
        try:
            self.write_at(handle, 0, data)
            if disposition == "open_if":
                self.set_end_of_file(handle, len(data))
        finally:
            self.close_handle(handle)

    def mkdir(self, path):
        """Creates a folder; True if created, False if it existed."""
        try:
            handle = self.open(
                path,
                DirectoryAccessMask.FILE_LIST_DIRECTORY | DirectoryAccessMask.FILE_READ_ATTRIBUTES,
                CreateDisposition.FILE_CREATE,
                directory=True,
            )
        except SmbError as e:
            if e.status == NtStatus.STATUS_OBJECT_NAME_COLLISION:
                return False
            raise
        self.close_handle(handle)
        return True

    def delete(self, path):
        handle = self.open(
            path,
            FilePipePrinterAccessMask.DELETE | FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES,
            CreateDisposition.FILE_OPEN,
            options=CreateOptions.FILE_DELETE_ON_CLOSE,
        )
        self.close_handle(handle)

    def listdir(self, path):
        handle = self.open(
            path,
            DirectoryAccessMask.FILE_LIST_DIRECTORY | DirectoryAccessMask.FILE_READ_ATTRIBUTES,
            CreateDisposition.FILE_OPEN,
            directory=True,
        )
        names = []
        try:
            while True:
                try:
                    entries = handle.query_directory("*", FileInformationClass.FILE_NAMES_INFORMATION)
                except SMBResponseException as e:
                    if e.status == NtStatus.STATUS_NO_MORE_FILES:
                        break
                    raise SmbError("query-directory", path, e.status) from None
                for entry in entries:
                    name = entry["file_name"].get_value().decode("utf-16-le")
                    if name not in (".", ".."):
                        names.append(name)
        finally:
            self.close_handle(handle)
        return sorted(names)

    # --- the CER client's own steps ------------------------------------------------------

    def update_count(self, path, add_cab, pattern):
        """MS-CER 3.1.7 step 8: create count.txt or increment it. Returns the values written."""
        if pattern == "a":
            # One handle: read, seek 0, write, set end of file, close.
            handle = self.open(path, READ | WRITE, CreateDisposition.FILE_OPEN_IF)
            try:
                cabs, hits = parse_count(self.read_all(handle))
                new = render_count(cabs + add_cab, hits + 1)
                self.write_at(handle, 0, new)
                self.set_end_of_file(handle, len(new))
            finally:
                self.close_handle(handle)
        else:
            # Open-read-close, then overwrite (FILE_OVERWRITE_IF or FILE_SUPERSEDE), write, close.
            cabs, hits = parse_count(self.get(path) or b"")
            new = render_count(cabs + add_cab, hits + 1)
            disposition = "overwrite_if" if pattern == "b" else "supersede"
            self.put(path, new, disposition)
        return cabs + add_cab, hits + 1

    def append_line(self, path, line):
        """MS-CER 3.1.7 step 9: create the log if missing, then append one entry at the end
        of file queried through the same handle."""
        handle = self.open(path, READ | WRITE, CreateDisposition.FILE_OPEN_IF)
        try:
            end = self.end_of_file(handle)
            self.write_at(handle, end, line)
        finally:
            self.close_handle(handle)


def parse_count(data):
    """Cabs Gathered and Total Hits of a count.txt (absent or unreadable: 0, 0)."""
    cabs = hits = 0
    for line in data.decode("cp1252", "replace").splitlines():
        key, _, value = line.partition("=")
        if key == "Cabs Gathered" and value.strip().isdigit():
            cabs = int(value)
        elif key == "Total Hits" and value.strip().isdigit():
            hits = int(value)
    return cabs, hits


def render_count(cabs, hits):
    return ("Cabs Gathered=%d\r\nTotal Hits=%d\r\n" % (cabs, hits)).encode("ascii")


def parse_settings(data):
    """name=value lines of policy.txt / status.txt (bad lines ignored, MS-CER 3.1.7 step 1)."""
    values = {}
    if data:
        for line in data.decode("cp1252", "replace").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key] = value
    return values


def is_true(value):
    return value is not None and value.strip().upper() in ("YES", "TRUE", "1")


def cer_cycle(share, args, cycle, cab_bytes, summary):
    """One report, MS-CER 3.1.7 steps 1-9. Updates `summary` with what the server accepted."""
    sub = args.subpath.strip("\\")
    # Steps 1-2: policy.txt, then status.txt overrides it.
    settings = parse_settings(share.get("policy.txt"))
    settings.update(parse_settings(share.get("status\\%s\\status.txt" % sub)))
    tracking = is_true(settings.get("Tracking"))
    limit_text = settings.get("Crashes per bucket", "5").strip()
    limit = int(limit_text) if limit_text.isdigit() else 5
    # Step 3: count.txt (absent = 0 cabs). Kernel faults (blue, shutdown) have no limit.
    cabs, _ = parse_count(share.get("counts\\%s\\count.txt" % sub) or b"")
    unlimited = sub.lower() in ("blue", "shutdown")
    collect = unlimited or cabs < limit
    # Step 4: iData (absent counts as "collect", MS-CER 2.2.5 and example 4.2).
    if "iData" in settings and not is_true(settings["iData"]):
        collect = False
    # R5: mkdir each level of the three trees.
    for tree in ("cabs", "status", "counts"):
        path = tree
        for level in sub.split("\\"):
            path += "\\" + level
            share.mkdir(path)
    cab_name = None
    if collect:
        # Steps 6-7: copy the report.
        cab_name = args.cab_name or "%02d%03d%s.cab" % (
            args.client_id % 100,
            cycle % 1000,
            "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(3)),
        )
        share.put("cabs\\%s\\%s" % (sub, cab_name), cab_bytes, "create")
        summary["cabs"].append(cab_name)
    # Step 8: count.txt; the patterns alternate a, b, b-with-supersede.
    pattern = args.pattern
    if pattern == "alternate":
        pattern = ("a", "b", "s")[cycle % 3]
    share.update_count("counts\\%s\\count.txt" % sub, 1 if cab_name else 0, pattern)
    summary["hits"] += 1
    summary["cabs_counted"] += 1 if cab_name else 0
    summary["patterns"][pattern] = summary["patterns"].get(pattern, 0) + 1
    # Step 9: tracking.
    if tracking:
        now = time.localtime()
        stamp_time = args.time or time.strftime("%H:%M:%S", now)
        stamp_date = args.date or time.strftime("%m-%d-%Y", now)
        user = args.user_name or "user%d-%d" % (args.client_id, cycle)
        bucket = settings.get("Bucket")
        item = bucket if bucket and bucket.isdigit() else sub
        crash = "%s  %s\t%s\t%s\t%s\r\n" % (stamp_time, stamp_date, args.machine, user, item)
        share.append_line("crash.log", crash.encode("cp1252"))
        summary["crash_lines"].append(crash)
        hits = "%s  %s\t%s\t%s\t%s\r\n" % (stamp_time, stamp_date, args.machine, user, cab_name or "No CAB")
        share.append_line("cabs\\%s\\hits.log" % sub, hits.encode("cp1252"))
        summary["hits_lines"].append(hits)


def cmd_cycles(share, args):
    with open(args.cab, "rb") as f:
        cab_bytes = f.read()
    summary = {
        "ok": True,
        "client": args.client_id,
        "cycles": 0,
        "hits": 0,
        "cabs_counted": 0,
        "cabs": [],
        "crash_lines": [],
        "hits_lines": [],
        "patterns": {},
        "errors": [],
    }
    for cycle in range(args.cycles):
        try:
            cer_cycle(share, args, cycle, cab_bytes, summary)
            summary["cycles"] += 1
        except SmbError as e:
            summary["ok"] = False
            summary["errors"].append(str(e))
    return summary


def emit(event):
    """One event line, flushed at once: a test that kills the server reads it even if this
    process is killed right after."""
    print(json.dumps(event), flush=True)


def cmd_loop(share, args):
    """CER reports on one session until killed or --reports are done; for crash tests.

    Each report: copy a cab of random bytes (written in random pieces), increment count.txt
    with the one-handle pattern (read, seek 0, write, set end of file, close: Cabs Gathered
    and Total Hits +1), append one hits.log line. Every close is announced by an "attempt"
    event before the CLOSE request is sent (a cab's before its create, with the sha256 of
    the whole upload, and a "closing" event when all its bytes are written) and an "ack"
    event once the CLOSE returned success; a "done" event ends each report. The first error
    ends the loop with an "error" event.
    """
    rng = random.Random(args.seed)
    sub = args.subpath.strip("\\")
    cabs = "cabs\\" + sub
    count_path = "counts\\%s\\count.txt" % sub
    log_path = cabs + "\\hits.log"
    emit({"ev": "ready"})
    n = 0
    try:
        while args.reports == 0 or n < args.reports:
            n += 1
            tag = "c%dr%dn%d" % (args.client_id, args.round, n)
            # 1. The cab.
            name = tag + ".cab"
            big = args.big_every and (n - 1) % args.big_every == 0
            # Big cabs reach past 4 MiB, where cerfs keeps cab bytes in its cab database.
            size = rng.randint(4 * MIB + 1, 6 * MIB) if big else rng.randint(args.min_size, args.max_size)
            data = rng.randbytes(size)
            emit({"ev": "attempt", "op": "cab", "name": name, "size": len(data),
                  "sha256": hashlib.sha256(data).hexdigest()})
            handle = share.open(cabs + "\\" + name, READ | WRITE, CreateDisposition.FILE_CREATE)
            at = 0
            while at < len(data):
                piece = data[at : at + rng.randint(1, CHUNK)]
                share._call("write", handle.file_name, handle.write, piece, at)
                at += len(piece)
            emit({"ev": "closing", "op": "cab", "name": name})
            share.close_handle(handle)
            emit({"ev": "ack", "op": "cab", "name": name})
            # 2. count.txt, one handle.
            handle = share.open(count_path, READ | WRITE, CreateDisposition.FILE_OPEN)
            gathered, hits = parse_count(share.read_all(handle))
            new = render_count(gathered + 1, hits + 1)
            share.write_at(handle, 0, new)
            share.set_end_of_file(handle, len(new))
            emit({"ev": "attempt", "op": "count"})
            share.close_handle(handle)
            emit({"ev": "ack", "op": "count"})
            # 3. hits.log: append at the end this handle sees.
            item = "i%s.cab" % tag
            line = "12:00:00  01-02-2027\tSMB%d\tuser\t%s\r\n" % (args.client_id, item)
            handle = share.open(log_path, READ | WRITE, CreateDisposition.FILE_OPEN_IF)
            share.write_at(handle, share.end_of_file(handle), line.encode("ascii"))
            emit({"ev": "attempt", "op": "line", "item": item})
            share.close_handle(handle)
            emit({"ev": "ack", "op": "line", "item": item})
            emit({"ev": "done", "n": n})
    except Exception as e:  # noqa: BLE001 - the server may be killed under us: report, stop
        emit({"ev": "error", "error": "%s: %s" % (type(e).__name__, e)})
        return {"ev": "end", "ok": False, "reports": n - 1}
    return {"ev": "end", "ok": True, "reports": n}


def cmd_sha256(share, args):
    """The sha256 and size of a file, read in pieces (cabs too big for get's hex)."""
    handle = share.open(args.path, READ, CreateDisposition.FILE_OPEN)
    try:
        data = share.read_all(handle)
    finally:
        share.close_handle(handle)
    return {"ok": True, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def cmd_get(share, args):
    data = share.get(args.path)
    if data is None:
        return {"ok": False, "step": "create", "path": args.path, "status": "absent"}
    return {"ok": True, "data_hex": data.hex()}


def cmd_put(share, args):
    with open(args.local, "rb") as f:
        data = f.read()
    share.put(args.path, data, args.disposition)
    return {"ok": True}


def cmd_mkdir(share, args):
    return {"ok": True, "created": share.mkdir(args.path)}


def cmd_delete(share, args):
    share.delete(args.path)
    return {"ok": True}


def cmd_ls(share, args):
    return {"ok": True, "names": share.listdir(args.path)}


# Handles an operation keeps open until its batch (or process) ends.
HELD = []


def cmd_hold_delete(share, args):
    """Opens PATH asking for DELETE access with delete-on-close, and keeps the handle open
    until the batch ends: what a client does to make a file vanish at its last close."""
    handle = share.open(
        args.path,
        FilePipePrinterAccessMask.DELETE | FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES,
        CreateDisposition.FILE_OPEN,
        options=CreateOptions.FILE_DELETE_ON_CLOSE,
    )
    HELD.append((share, handle))
    return {"ok": True}


def cmd_extend(share, args):
    """Creates a new file, writes a few bytes, sets its end of file to SIZE, closes it;
    says how long the close took."""
    handle = share.open(args.path, READ | WRITE, CreateDisposition.FILE_CREATE)
    try:
        share.write_at(handle, 0, b"MSCF")
        share.set_end_of_file(handle, args.size)
    finally:
        started = time.monotonic()
        share.close_handle(handle)
    return {"ok": True, "close_seconds": time.monotonic() - started}


def cmd_write_at(share, args):
    """Creates a new file and writes LEN bytes at OFFSET (a sparse gap before them)."""
    handle = share.open(args.path, READ | WRITE, CreateDisposition.FILE_CREATE)
    try:
        share.write_at(handle, args.offset, b"x" * args.length)
    finally:
        share.close_handle(handle)
    return {"ok": True}


def cmd_append(share, args):
    """Appends the bytes HEX to PATH at its end of file (a log line, verbatim)."""
    share.append_line(args.path, bytes.fromhex(args.hex))
    return {"ok": True}


def cmd_log_flood(share, args):
    """Opens HANDLES handles on PATH and writes BYTES bytes without a line end through
    each, all held open at once; then closes them. The first refusal per handle is
    reported (name: count)."""
    handles = []
    refusals = {}
    written = 0
    try:
        for _ in range(args.handles):
            handles.append(share.open(args.path, READ | WRITE, CreateDisposition.FILE_OPEN_IF))
        for handle in handles:
            end = share.end_of_file(handle)
            try:
                share.write_at(handle, end, b"x" * args.bytes)
                written += args.bytes
            except SmbError as e:
                name = status_name(e.status)
                refusals[name] = refusals.get(name, 0) + 1
    finally:
        for handle in handles:
            try:
                share.close_handle(handle)
            except SmbError:
                pass
    return {"ok": True, "written": written, "refusals": refusals}


def cmd_count(share, args):
    cabs, hits = share.update_count(args.path, args.add_cab, args.pattern)
    return {"ok": True, "cabs": cabs, "hits": hits}


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=445)
    parser.add_argument("--share", default="cer")
    parser.add_argument(
        "--user-share",
        help="share the --user account connects to in a batch (default: --share); "
        "cerfs serve's admin works through SHARE-admin",
    )
    parser.add_argument("--user", help="account name (default: the guest)")
    parser.add_argument("--password-env", help="environment variable holding the password")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("cycles", help="run MS-CER 3.1.7 client cycles")
    p.add_argument("--subpath", required=True, help=r"error subpath, e.g. App\1.0\Mod\1.0\0000abcd or blue")
    p.add_argument("--cab", required=True, help="the report to copy")
    p.add_argument("--cab-name", help="name of the copied report (default: random, unique per cycle)")
    p.add_argument("--cycles", type=int, default=1)
    p.add_argument("--client-id", type=int, default=0)
    p.add_argument("--pattern", choices=("a", "b", "s", "alternate"), default="alternate")
    p.add_argument("--machine", default="TestMachine")
    p.add_argument("--user-name", help="user in log lines (default: user<client>-<cycle>)")
    p.add_argument("--time", help="HH:MM:SS in log lines (default: now)")
    p.add_argument("--date", help="MM-DD-YYYY in log lines (default: today)")
    p.set_defaults(func=cmd_cycles)

    p = sub.add_parser("get", help="read a file (hex in the JSON)")
    p.add_argument("path")
    p.set_defaults(func=cmd_get)

    p = sub.add_parser("loop", help="CER reports until killed, one JSON event per line (crash tests)")
    p.add_argument("--subpath", required=True)
    p.add_argument("--client-id", type=int, default=0)
    p.add_argument("--round", type=int, default=0, help="part of the names, unique per run")
    p.add_argument("--seed", type=int, default=0, help="sizes, pieces and bytes of the cabs")
    p.add_argument("--min-size", type=int, default=1)
    p.add_argument("--max-size", type=int, default=512 * 1024)
    p.add_argument("--reports", type=int, default=0, help="stop after this many (0: never)")
    p.add_argument("--big-every", type=int, default=0,
                   help="cab 1, 1+N, 1+2N, ... is 4-6 MiB instead (0: never)")
    p.set_defaults(func=cmd_loop)

    p = sub.add_parser("sha256", help="sha256 and size of a file")
    p.add_argument("path")
    p.set_defaults(func=cmd_sha256)

    p = sub.add_parser("put", help="write a local file to the share")
    p.add_argument("local")
    p.add_argument("path")
    p.add_argument("--disposition", choices=sorted(DISPOSITIONS), default="overwrite_if")
    p.set_defaults(func=cmd_put)

    p = sub.add_parser("mkdir", help="create a folder")
    p.add_argument("path")
    p.set_defaults(func=cmd_mkdir)

    p = sub.add_parser("delete", help="delete a file (delete on close)")
    p.add_argument("path")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("ls", help="list a folder")
    p.add_argument("path")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("count", help="one count.txt update (MS-CER 3.1.7 step 8)")
    p.add_argument("path")
    p.add_argument("--pattern", choices=("a", "b", "s"), default="a")
    p.add_argument("--add-cab", type=int, choices=(0, 1), default=1)
    p.set_defaults(func=cmd_count)

    p = sub.add_parser("hold-delete", help="open with DELETE and delete-on-close, held until the batch ends")
    p.add_argument("path")
    p.set_defaults(func=cmd_hold_delete)

    p = sub.add_parser("extend", help="create, write 4 bytes, set the end of file to SIZE, close")
    p.add_argument("path")
    p.add_argument("size", type=int)
    p.set_defaults(func=cmd_extend)

    p = sub.add_parser("write-at", help="create and write LENGTH bytes at OFFSET")
    p.add_argument("path")
    p.add_argument("offset", type=int)
    p.add_argument("length", type=int)
    p.set_defaults(func=cmd_write_at)

    p = sub.add_parser("append", help="append bytes (hex) at the end of file")
    p.add_argument("path")
    p.add_argument("hex")
    p.set_defaults(func=cmd_append)

    p = sub.add_parser("log-flood", help="many handles each holding an unfinished line")
    p.add_argument("path")
    p.add_argument("--handles", type=int, default=48)
    p.add_argument("--bytes", type=int, default=1 << 20)
    p.set_defaults(func=cmd_log_flood)

    sub.add_parser(
        "negotiate",
        help="only negotiate (no session): print whether the server requires signing",
    )

    p = sub.add_parser(
        "batch",
        help="run many operations on one connection per account: a JSON list of "
        '{"as": "guest"|"user", "argv": ["get", "policy.txt"]} on stdin; prints a JSON list',
    )
    p.set_defaults(func=None)
    return parser


def connect(args, as_user):
    password = os.environ.get(args.password_env, "") if args.password_env else ""
    user = args.user if as_user else None
    share = (args.user_share or args.share) if as_user else args.share
    return Share(args.server, args.port, share, user, password)


def run_one(share, args):
    try:
        return args.func(share, args)
    except SmbError as e:
        return e.as_json()


def run_batch(parser, args):
    """Each operation on the guest's or the --user account's connection, opened once."""
    ops = json.load(sys.stdin)
    shares = {}
    results = []
    try:
        for op in ops:
            as_user = op.get("as", "guest") == "user"
            if as_user not in shares:
                shares[as_user] = connect(args, as_user)
            op_args = parser.parse_args(["--port", str(args.port), *op["argv"]])
            results.append(run_one(shares[as_user], op_args))
    finally:
        for held_share, handle in HELD:
            try:
                held_share.close_handle(handle)
            except SmbError:
                pass
        for share in shares.values():
            share.close()
    return results


def main():
    parser = build_parser()
    args = parser.parse_args()
    try:
        if args.command == "batch":
            result = run_batch(parser, args)
        elif args.command == "negotiate":
            conn = Connection(uuid.uuid4(), args.server, args.port, require_signing=False)
            conn.connect(timeout=30)
            # smbprotocol turns require_signing on when the server's SecurityMode demands it.
            result = {"ok": True, "dialect": conn.dialect, "signing_required": conn.require_signing}
            conn.disconnect(True)
        else:
            share = connect(args, args.user is not None)
            try:
                result = run_one(share, args)
            finally:
                share.close()
    except Exception as e:  # noqa: BLE001 - report any connection failure as JSON
        print(json.dumps({"ok": False, "step": "connect", "status": str(e)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
