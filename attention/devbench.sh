set -x
cd attention
nproc; grep -m1 'model name' /proc/cpuinfo
./att.test -test.run XXX -test.bench 'Decode' -test.benchtime 300ms -test.cpu 2 2>&1 | grep -E '^Bench|ok'
./att.test -test.run XXX -test.bench 'Prefill' -test.benchtime 1x -test.cpu 2 -attention.long 2>&1 | grep -E '^Bench|ok'
./att.test -test.run XXX -test.bench 'Prefill/full/16K' -test.benchtime 1x -test.cpu 16 -attention.long 2>&1 | grep -E '^Bench|ok'
./att.test -test.run XXX -test.bench 'Decode/full/16K' -test.benchtime 300ms -test.cpu 16 2>&1 | grep -E '^Bench|ok'
./att.test -test.run XXX -test.bench 'Rope' -test.benchtime 300ms -test.cpu 1 2>&1 | grep -E '^Bench|ok'
