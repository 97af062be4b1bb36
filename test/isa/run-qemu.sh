#!/bin/sh
# Build test/isa/*.S (or the files given) into dist/isa/*.elf and run each under QEMU.
# Usage: test/isa/run-qemu.sh [test/isa/rv64m.S ...]
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$root/dist/isa"
mkdir -p "$out"
CC=${CC:-riscv64-linux-gnu-gcc}
QEMU=${QEMU:-qemu-system-riscv64}
[ $# -gt 0 ] || set -- "$here"/*.S
fails=0
for src in "$@"; do
  name=$(basename "$src" .S)
  elf="$out/$name.elf"
  if ! "$CC" -march=rv64gc -mabi=lp64d -nostdlib -nostartfiles -static -fno-pie -no-pie -Wl,--no-warn-rwx-segments -Wl,--build-id=none -I "$here" \
      -T "$here/env/link.ld" -o "$elf" "$src"; then
    echo "BUILD FAIL $name"; fails=$((fails + 1)); continue
  fi
  res=$(timeout 20 "$QEMU" -M virt -m 64M -cpu rv64,h=false,sstc=true -smp 1 -nographic -bios none \
    -kernel "$elf" </dev/null 2>&1)
  rc=$?
  if [ $rc -eq 0 ]; then echo "ok   $name"; else
    echo "FAIL $name (exit $rc) $(echo "$res" | tr -d '\r' | tail -n 2 | tr '\n' ' ')"
    fails=$((fails + 1))
  fi
done
exit $fails
