#!/bin/bash
# profile-real.sh OUT [bench real flags...]
#
# Runs `bench real` (from the repository root) and, during every postern
# latency row (load on https://open.localhost/hello, small GET), profiles the
# real meshd and connectord processes with Linux perf (as root):
#   1. perf stat (CPU, context switches, system calls by kind) and
#      perf record -g (CPU samples, Go frame pointers) for 3 s each;
#   2. then perf stat with uprobes on runtime.ready (a goroutine made
#      runnable: a hand-off), runtime.wakep (a thread woken for it) and the
#      per-request handler (edge and egress ServeHTTP) for 3 s, which gives
#      hand-offs per request. Uprobes slow the process: their window's
#      request rate is not a figure, the counts per request are.
# Then it prints the CPU breakdown of each profile (perfclass.py) and the
# counts per request.
#
# Example: bench/profile/profile-real.sh /tmp/prof --rounds 1 --duration 12s --concurrency 1,32
set -eu
out=$(realpath -m "$1"); shift
here=$(dirname "$(realpath "$0")")
mkdir -p "$out"
go build -o "$out/bench" ./bench
"$out/bench" real --out "$out/real" "$@" >"$out/run.log" 2>&1 &
bp=$!
seen=""
stats=task-clock,context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_sendmmsg,syscalls:sys_enter_recvmmsg,syscalls:sys_enter_write,syscalls:sys_enter_read
while kill -0 $bp 2>/dev/null; do
  for lp in $(pgrep -P $bp -f "bench load --url https://open.localhost/hello" || true); do
    case " $seen " in *" $lp "*) continue ;; esac
    seen="$seen $lp"
    cl=$(tr '\0' ' ' </proc/$lp/cmdline 2>/dev/null) || continue
    echo "$cl" | grep -q -- "--bulk-bytes 0 " || continue
    c=$(echo "$cl" | sed -n 's/.*--concurrency \([0-9]*\).*/\1/p')
    m=$(pgrep -P $bp -f "meshd run --config"); k=$(pgrep -P $bp -f "connectord run")
    sleep 2 # past the warm-up
    pids=()
    for x in meshd:$m connectord:$k; do
      n=${x%%:*}; p=${x#*:}
      perf stat -e $stats -p $p -o "$out/stat-$n-c$c.txt" -- sleep 3 &
      pids+=($!)
      perf record -F 1999 -g -p $p -o "$out/$n-c$c.data" -- sleep 3 >/dev/null 2>&1 &
      pids+=($!)
    done
    wait "${pids[@]}" || true
    for x in meshd:$m:'github.com/postern/postern/pkg/edge.(*Handler).ServeHTTP' \
             connectord:$k:'github.com/postern/postern/pkg/egress.(*Handler).ServeHTTP'; do
      n=${x%%:*}; r=${x#*:}; p=${r%%:*}; f=${r#*:}
      g=pr$RANDOM
      exe=$(readlink /proc/$p/exe)
      perf probe -q -x "$exe" --add "$g:ready=runtime.ready" &&
      perf probe -q -x "$exe" --add "$g:wakep=runtime.wakep" &&
      perf probe -q -x "$exe" --add "$g:req=$f" &&
      perf stat -e "context-switches,raw_syscalls:sys_enter,$g:ready,$g:wakep,$g:req" -p $p -o "$out/handoffs-$n-c$c.txt" -- sleep 3
      perf probe -q -d "$g:*" || true
    done
    echo "profiled c=$c" >>"$out/run.log"
  done
  sleep 0.2
done
wait $bp
cat "$out/run.log"
for f in "$out"/*.data; do
  echo "== $(basename "$f" .data): share of CPU samples"
  perf script -i "$f" 2>/dev/null | python3 "$here/perfclass.py"
done
for f in "$out"/handoffs-*.txt; do
  echo "== $(basename "$f" .txt): per request"
  awk '$2 ~ /:(ready|wakep|req)$|context-switches|sys_enter/ {gsub(",","",$1); split($2,a,":"); v[a[length(a)]]=$1}
       END {r=v["req"]; if (r>0) printf "requests %d  goroutines readied %.1f  threads woken (wakep) %.1f\n", r, v["ready"]/r, v["wakep"]/r}' "$f"
done
