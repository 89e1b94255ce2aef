# common.sh - helpers the benchmark scripts share (sourced, not run).

now() { date +%s.%N; }
# The median of the numbers on standard input, one a line.
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# N free TCP ports on loopback, space-separated.
ports() { /usr/bin/python3 -c "
import socket
s=[socket.socket() for _ in range($1)]
[x.bind(('127.0.0.1',0)) for x in s]
print(' '.join(str(x.getsockname()[1]) for x in s))"; }
