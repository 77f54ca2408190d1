"""perfclass.py: share of CPU samples per cost category, from `perf script`.

Reads `perf script` output of a `perf record -g` profile of a Go process on
stdin and prints the share of samples in each category. A sample goes to
the first rule that matches its stack:

  1. GC: a GC worker, sweeper, scavenger or mark assist on the stack.
  2. runtime: sysmon; idle Ps spinning, polling and parking threads
     (findRunnable, stopm); waking a thread for a readied goroutine
     (ready, wakep, startm, handoffp).
  3. system calls: a Go syscall frame, by the first non-runtime caller:
     UDP (the WireGuard bind: sendmmsg, recvmmsg), TCP (client, backend
     and TLS conns), the access log's write(2) to stderr.
  4. kernel UDP or TCP frames.
  5. other runtime scheduling (park, goroutine switch, entersyscall).
  6. the package of the first frame, from the leaf, outside the runtime
     and the standard library's plumbing (sync, io, bufio, time, ...):
     WireGuard crypto, TLS, WireGuard device, netstack, HTTP, metrics,
     access log, Postern packages.

Usage: perf script -i FILE | python3 perfclass.py
"""
import collections
import re
import sys

GC = ('runtime.gcBgMarkWorker', 'runtime.gcDrain', 'runtime.bgsweep', 'runtime.bgscavenge',
      'runtime.gcAssistAlloc', 'runtime.markroot', 'runtime.scanobject', 'runtime.wbBufFlush',
      'runtime.gcStart', 'runtime.sweepone')
SCHED = ('runtime.schedule', 'runtime.findRunnable', 'runtime.park_m', 'runtime.goready',
         'runtime.ready', 'runtime.wakep', 'runtime.startm', 'runtime.handoffp', 'runtime.stopm',
         'runtime.notesleep', 'runtime.notewakeup', 'runtime.mstart', 'runtime.goexit0',
         'runtime.newproc', 'runtime.entersyscall', 'runtime.exitsyscall', 'runtime.gopark',
         'runtime.netpoll', 'runtime.usleep', 'runtime.futex', 'runtime.morestack',
         'runtime.newstack', 'runtime.preemptM', 'runtime.sigtramp', 'runtime.selectgo',
         'runtime.resetspinning', 'runtime.execute')
PLUMBING = ('runtime.', 'internal/', 'sync', 'syscall', 'bufio', 'io.', 'bytes', 'strings',
            'strconv', 'time.', 'context', 'fmt', 'unicode', 'math', 'sort', 'slices', 'maps',
            'hash', 'errors', 'container', 'net.', 'os.', 'reflect')
UDP = ('golang.org/x/net/internal/socket', 'github.com/postern/postern/pkg/wgnet',
       'github.com/postern/postern/pkg/streambind', 'golang.zx2c4.com/wireguard/conn')
TCP = ('github.com/postern/postern/pkg/iplimit', 'net/http', 'crypto/tls', 'net.(*conn)',
       'gvisor.dev')


def package(f):
    """The category of a non-plumbing frame, or None to look further."""
    if f.startswith(('golang.org/x/crypto/chacha20', 'golang.org/x/crypto/internal/poly1305',
                     'golang.org/x/crypto/blake2s', 'golang.org/x/crypto/curve25519')):
        return 'WireGuard crypto'
    if f.startswith(('crypto/', 'vendor/golang.org/x/crypto')):
        return 'TLS (crypto/tls, AES-GCM)'
    if f.startswith('golang.zx2c4.com/wireguard'):
        return 'WireGuard device (queues, workers)'
    if f.startswith('gvisor.dev'):
        return 'netstack (gVisor TCP/IP)'
    if f.startswith(('net/http', 'net/textproto', 'net/url', 'mime', 'golang.org/x/net/http')):
        return 'HTTP parse, serve, proxy (net/http)'
    if f.startswith('github.com/prometheus'):
        return 'metrics'
    if f.startswith('log/slog') or 'pkg/accesslog' in f or f.startswith('encoding/json'):
        return 'access log (slog JSON)'
    if 'pkg/iplimit' in f:
        return 'TCP loopback syscalls'
    if f.startswith('github.com/postern/postern/pkg/edge'):
        return 'postern edge (auth, rewrite, transport)'
    if f.startswith(('github.com/postern/postern/pkg/wgnet', 'github.com/postern/postern/pkg/streambind')):
        return 'postern wgnet/streambind'
    if f.startswith('github.com/postern/postern/'):
        return 'postern other (' + f.split('/')[4].split('.')[0] + ')'
    return None


def classify(frames):
    gofr = [n for n in frames if not n.startswith('[k]')]
    kern = ' '.join(n for n in frames if n.startswith('[k]'))
    if any(n.startswith(GC) for n in gofr):
        return 'GC'
    if any(n.startswith('runtime.sysmon') for n in gofr):
        return 'runtime: sysmon'
    if any(n.startswith(('runtime.findRunnable', 'runtime.stopm', 'runtime.runqgrab')) for n in gofr):
        return 'runtime: idle threads spinning, polling, parking (findRunnable)'
    if any(n.startswith(('runtime.ready', 'runtime.wakep', 'runtime.startm', 'runtime.goready',
                         'runtime.handoffp', 'runtime.notewakeup')) for n in gofr):
        return 'runtime: waking a thread for a readied goroutine'
    if any('Syscall' in n or n.startswith('syscall.') for n in gofr):
        for n in gofr:
            if n.startswith(UDP):
                return 'UDP syscalls (sendmmsg, recvmmsg)'
            if n.startswith('os.(*File)'):
                return 'access log write(2) to stderr'
            if n.startswith(TCP):
                return 'TCP loopback syscalls'
    if 'udp' in kern:
        return 'UDP syscalls (sendmmsg, recvmmsg)'
    if 'tcp' in kern:
        return 'TCP loopback syscalls'
    if any(n.startswith(SCHED) for n in gofr) or 'futex' in kern or 'epoll' in kern or 'nanosleep' in kern:
        return 'runtime: other scheduling (park, switch, syscall entry)'
    for n in gofr:
        if n.startswith(PLUMBING):
            continue
        c = package(n)
        if c:
            return c
    return 'other'


def main():
    counts = collections.Counter()
    frames = []
    total = 0

    def flush():
        nonlocal total
        if frames:
            total += 1
            counts[classify(frames)] += 1

    for line in sys.stdin:
        line = line.rstrip('\n')
        if not line.strip():
            flush()
            frames = []
            continue
        if line[0] not in ' \t':
            continue
        parts = line.strip().split(None, 1)
        if len(parts) < 2:
            continue
        m = re.match(r'(.*?)\+0x[0-9a-f]+ \((.*)\)$', parts[1]) or re.match(r'(.*) \((.*)\)$', parts[1])
        if not m:
            continue
        name, dso = m.group(1), m.group(2)
        if 'kernel' in dso or dso.startswith('['):
            name = '[k]' + name
        frames.append(name)
    flush()
    for c, n in counts.most_common():
        print(f'{100 * n / total:5.1f}%  {c}')
    print(f'samples: {total}')


main()
