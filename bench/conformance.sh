#!/usr/bin/env bash
# Conformance of a cerfs share with Samba's own test suite (smbtorture) and with the POSIX
# file system suite pjdfstest, each against cerfs and against a plain directory served
# the same way, so that what fails on cerfs alone stands out (docs/conformance.md).
#
#   sudo bench/conformance.sh [--pjdfstest DIR] [--out DIR] [--suites "rw create ..."]
#
# smbtorture: `cerfs serve` exports the cerfs mount; a second smbd exports a plain
# directory with the very smb.conf cerfs generated (only the path, port and state
# directory differ). Each smb2 suite runs as an ordinary account and as the guest,
# against both. A test that passes on the plain directory and fails on cerfs must be
# listed, with its reason, in bench/conformance-explained.txt; otherwise the script exits 1.
#
# pjdfstest (optional, --pjdfstest DIR): not a Debian package and never part of this
# repository. Build it outside the tree, e.g. from github.com/pjd/pjdfstest:
#   autoreconf -ifs && ./configure && make pjdfstest
# It then runs (prove -r DIR/tests) in a scratch folder of the cerfs mount and in a plain
# directory; its failures are counted per test file.
#
# Needs root, samba, smbclient, samba-testsuite (smbtorture), fuse3; a built cerfs
# (target/release/cerfs, else target/debug/cerfs, else $CERFS). Ports 14480 and 14481.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
suites="rw create getinfo setinfo rename dir read lock delete-on-close-perms compound streams maxfid"
pjd=""
out="$repo/target/conformance"
while [ $# -gt 0 ]; do
    case "$1" in
        --pjdfstest) pjd=$(cd "$2" && pwd); shift 2 ;;
        --out) out=$2; shift 2 ;;
        --suites) suites=$2; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "conformance.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

die() { echo "conformance.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (smbd and FUSE need it)"
for tool in smbd smbclient smbtorture smbpasswd; do
    command -v "$tool" >/dev/null || die "$tool not found: apt-get install samba smbclient samba-testsuite"
done
if [ -n "$pjd" ]; then
    [ -x "$pjd/pjdfstest" ] || die "$pjd/pjdfstest not built: cd $pjd && autoreconf -ifs && ./configure && make pjdfstest"
    command -v prove >/dev/null || die "prove not found: apt-get install perl"
fi
cerfs=${CERFS:-}
if [ -z "$cerfs" ]; then
    for c in "$repo/target/release/cerfs" "$repo/target/debug/cerfs"; do
        [ -x "$c" ] && { cerfs=$c; break; }
    done
fi
[ -n "$cerfs" ] || die "no cerfs binary: cargo build --release -p cerfs (or set CERFS)"

port_cerfs=14480
port_plain=14481
account=cerfs-torture
password=torture-pw-1
work=$(mktemp -d /tmp/cerfs-conformance.XXXXXX)
chmod 755 "$work"
mkdir -p "$out"
out=$(cd "$out" && pwd)
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    mountpoint -q "$work/mnt" 2>/dev/null && fusermount3 -u -z "$work/mnt" || true
    rm -rf "$work"
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    die "nothing listens on port $1 after 30 s (see $out/*.log)"
}

# --- cerfs serve, and the account both servers share.
getent passwd "$account" >/dev/null ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$account"
printf 'admin-pw-1\n' > "$work/admin.pw"
setsid "$cerfs" serve --db "$work/cer.db" --mountpoint "$work/mnt" --state-dir "$work/cerfs-samba" \
    --port "$port_cerfs" --admin-password-file "$work/admin.pw" --samba-log-level 0 \
    </dev/null >"$out/cerfs-serve.log" 2>&1 &
pids+=($!)
wait_port "$port_cerfs"
conf_cerfs="$work/cerfs-samba/smb.conf"
printf '%s\n%s\n' "$password" "$password" | smbpasswd -c "$conf_cerfs" -s -a "$account" >/dev/null

# --- a plain directory, exported with the smb.conf cerfs generated.
mkdir -p "$work/plain" "$work/plain-samba"
chmod 1777 "$work/plain"
for d in lock state cache run ncalrpc usershares; do mkdir -p -m 755 "$work/plain-samba/$d"; done
for d in private bind-dns; do mkdir -p -m 700 "$work/plain-samba/$d"; done
conf_plain="$work/plain-samba/smb.conf"
sed -e "s#$work/cerfs-samba#$work/plain-samba#g" \
    -e "s#^\(\s*path = \)$work/mnt\$#\1$work/plain#" \
    -e "s#^\(\s*smb ports = \)$port_cerfs\$#\1$port_plain#" "$conf_cerfs" > "$conf_plain"
cp "$work/cerfs-samba/username.map" "$work/plain-samba/username.map"
printf '%s\n%s\n' "$password" "$password" | smbpasswd -c "$conf_plain" -s -a "$account" >/dev/null
libexec=$(smbd -b | sed -n 's/^ *SAMBA_LIBEXECDIR: //p')
(
    exec setsid bash -c '
        smbd --foreground --no-process-group --debug-stdout --configfile "$1" </dev/null &
        [ -x "$2/samba-dcerpcd" ] && "$2/samba-dcerpcd" --foreground --no-process-group \
            --libexec-rpcds --configfile "$1" </dev/null &
        wait' _ "$conf_plain" "${libexec:-/usr/libexec/samba}"
) >"$out/plain-smbd.log" 2>&1 &
pids+=($!)
wait_port "$port_plain"

# --- smbtorture.
printf '[global]\n   workgroup = WORKGROUP\n' > "$work/client.conf"
compound_for_guests() {
    # smbtorture 4.17 crashes in these three as a guest (a client bug): run the others.
    smbtorture --configfile="$work/client.conf" //127.0.0.1/cer --list smb2.compound 2>/dev/null |
        sed -n 's/^smb2\.compound\.\([^ .]*\).*/smb2.compound.\1/p' | sort -u |
        grep -vxE 'smb2\.compound\.(related1|related2|invalid2)' > "$work/compound-guest.list"
}
compound_for_guests

clean_share() { # $1: target
    if [ "$1" = plain ]; then
        find "$work/plain" -mindepth 1 -delete
    else
        find "$work/mnt" -mindepth 1 -maxdepth 1 ! -name cabs ! -name counts ! -name status \
            -exec rm -rf {} +
    fi
}

run_suite() { # $1 target, $2 identity, $3 suite
    local port=$port_plain creds=(-U "nosuchuser%x") extra=()
    [ "$1" = cerfs ] && port=$port_cerfs
    [ "$2" = user ] && creds=(-U "$account%$password")
    if [ "$2" = guest ] && [ "$3" = compound ]; then
        extra=(--fullname "--load-list=$work/compound-guest.list")
    fi
    clean_share "$1"
    timeout 900 smbtorture --configfile="$work/client.conf" --target=samba3 --format=subunit \
        --option=torture:progress=no --option=torture:maxopenfiles=2000 \
        --option=torture:timelimit=2 --maximum-runtime=600 "${extra[@]}" \
        //127.0.0.1/cer -p "$port" "${creds[@]}" "smb2.$3" >"$out/torture/$1-$2-$3.subunit" 2>&1 || true
    # One line per test: "smb2.SUITE.NAME STATUS" (crashes leave no status: "crashed").
    grep -E '^(success|failure|error|skip): ' "$out/torture/$1-$2-$3.subunit" |
        sed -E 's/ \[$//; s/^(success|failure|error|skip): (smb2\.[^.]+\.)?(.*)$/smb2.'"$3"'.\3 \1/' |
        sed -E 's/ error$/ failure/'
}

mkdir -p "$out/torture"
for identity in user guest; do
    for target in plain cerfs; do
        : > "$out/torture/$target-$identity.results"
        for suite in $suites; do
            start=$(date +%s)
            run_suite "$target" "$identity" "$suite" >> "$out/torture/$target-$identity.results"
            echo "smbtorture smb2.$suite on $target as $identity: $(( $(date +%s) - start )) s" >&2
        done
    done
done

# --- compare.
explained="$here/conformance-explained.txt"
summary="$out/summary.md"
unexplained=0
{
    echo "# Conformance run $(date -u +%Y-%m-%dT%H:%MZ), cerfs $("$cerfs" --version | cut -d' ' -f2)"
    echo
    echo "## smbtorture (Samba $(smbd --version | cut -d' ' -f2))"
    echo
    echo "| identity | suite | plain: pass / fail / skip | cerfs: pass / fail / skip |"
    echo "|---|---|---|---|"
    for identity in user guest; do
        for suite in $suites; do
            row="| $identity | smb2.$suite |"
            for target in plain cerfs; do
                f="$out/torture/$target-$identity.results"
                p=$(grep -c "^smb2\.$suite\.[^ ]* success$" "$f" || true)
                x=$(grep -c "^smb2\.$suite\.[^ ]* failure$" "$f" || true)
                s=$(grep -c "^smb2\.$suite\.[^ ]* skip$" "$f" || true)
                row="$row $p / $x / $s |"
            done
            echo "$row"
        done
    done
    echo
    echo "Passing on the plain directory, not on cerfs:"
    echo
    for identity in user guest; do
        while read -r name status; do
            [ "$status" = success ] || continue
            grep -qxF "$name success" "$out/torture/cerfs-$identity.results" && continue
            reason=$(awk -v id="$identity" -v n="$name" '$1 == id && $2 == n { $1 = ""; $2 = ""; sub(/^ +/, ""); print; exit }' "$explained" 2>/dev/null || true)
            if [ -n "$reason" ]; then
                echo "- $identity: $name: $reason"
            else
                echo "- $identity: $name: **UNEXPLAINED**"
                unexplained=$((unexplained + 1))
            fi
        done < "$out/torture/plain-$identity.results"
    done
} > "$summary"

# --- pjdfstest.
run_pjd() { # $1 name, $2 directory to run in
    local log="$out/pjdfstest-$1.log"
    mkdir -p "$2" && chmod 777 "$2"
    (cd "$2" && timeout 3600 prove -r "$pjd/tests" >"$log" 2>&1) || true
    local files tests failed
    files=$(sed -n 's/^Files=\([0-9]*\), Tests=\([0-9]*\).*/\1/p' "$log")
    tests=$(sed -n 's/^Files=\([0-9]*\), Tests=\([0-9]*\).*/\2/p' "$log")
    failed=$( { grep -oE 'Failed: [0-9]+' "$log" || true; } | sed 's/Failed: //' | paste -sd+ | bc)
    echo "| $1 | ${files:-?} | ${tests:-?} | ${failed:-0} |"
}
if [ -n "$pjd" ]; then
    {
        echo
        echo "## pjdfstest ($(git -C "$pjd" log -1 --format=%h 2>/dev/null || echo unknown))"
        echo
        echo "| where | files | checks | failed checks |"
        echo "|---|---|---|---|"
        run_pjd plain "$work/plain-pjd/scratch"
        run_pjd cerfs "$work/mnt/pjd-scratch"
        echo
        echo "Failed checks per directory of tests on cerfs:"
        echo
        (grep -E '^/.*\(Wstat: .* Failed: [0-9]+\)' "$out/pjdfstest-cerfs.log" || true) |
            sed -E 's#^.*/tests/([^/]+)/.*Failed: ([0-9]+)\)#\1 \2#' |
            awk '{ n[$1] += $2 } END { for (d in n) printf "- %s: %d\n", d, n[d] }' | sort
    } >> "$summary"
fi

cat "$summary"
echo "results in $out" >&2
[ "$unexplained" = 0 ] || die "$unexplained test(s) pass on a plain directory and fail on cerfs without an explanation in bench/conformance-explained.txt"
