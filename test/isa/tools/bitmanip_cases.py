#!/usr/bin/env python3
"""Expected values for the generated cases of test/isa/rv64-bitmanip.S (Zba, Zbb, Zbc, Zbs).

Each result follows the definitions of the RISC-V Bit-Manipulation ISA-extensions 1.0.0 for
RV64 written out bit by bit (no shortcuts shared with the emulator); QEMU's run of the program
checks them again.

  python3 test/isa/tools/bitmanip_cases.py            print the generated block
  python3 test/isa/tools/bitmanip_cases.py --update   rewrite it between the markers
"""
import os
import sys

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1

def s64(x): return x - (1 << 64) if x >> 63 else x
def sext(x, bits):
    x &= (1 << bits) - 1
    return (x - (1 << bits) if x >> (bits - 1) else x) & M64
def zext32(x): return x & M32

def clz(x, w):
    n = 0
    for i in range(w - 1, -1, -1):
        if (x >> i) & 1: break
        n += 1
    return n
def ctz(x, w):
    n = 0
    for i in range(w):
        if (x >> i) & 1: break
        n += 1
    return n
def cpop(x, w): return sum((x >> i) & 1 for i in range(w))
def rol(x, s, w):
    s %= w; x &= (1 << w) - 1
    return ((x << s) | (x >> (w - s))) & ((1 << w) - 1) if s else x
def ror(x, s, w): return rol(x, (w - s % w) % w, w)
def clmul_full(a, b):
    p = 0
    for i in range(64):
        if (b >> i) & 1: p ^= a << i
    return p  # 127 bits
def orcb(x): return int.from_bytes(bytes(0xff if ((x >> (8 * i)) & 0xff) else 0 for i in range(8)), 'little')
def rev8(x): return int.from_bytes(x.to_bytes(8, 'little'), 'big')

RR = {
    'andn': lambda a, b: a & ~b & M64,
    'orn': lambda a, b: (a | ~b) & M64,
    'xnor': lambda a, b: ~(a ^ b) & M64,
    'min': lambda a, b: a if s64(a) < s64(b) else b,
    'minu': lambda a, b: min(a, b),
    'max': lambda a, b: a if s64(a) > s64(b) else b,
    'maxu': lambda a, b: max(a, b),
    'rol': lambda a, b: rol(a, b & 63, 64),
    'ror': lambda a, b: ror(a, b & 63, 64),
    'rolw': lambda a, b: sext(rol(a & M32, b & 31, 32), 32),
    'rorw': lambda a, b: sext(ror(a & M32, b & 31, 32), 32),
    'sh1add': lambda a, b: (b + (a << 1)) & M64,
    'sh2add': lambda a, b: (b + (a << 2)) & M64,
    'sh3add': lambda a, b: (b + (a << 3)) & M64,
    'add.uw': lambda a, b: (b + zext32(a)) & M64,
    'sh1add.uw': lambda a, b: (b + (zext32(a) << 1)) & M64,
    'sh2add.uw': lambda a, b: (b + (zext32(a) << 2)) & M64,
    'sh3add.uw': lambda a, b: (b + (zext32(a) << 3)) & M64,
    'clmul': lambda a, b: clmul_full(a, b) & M64,
    'clmulh': lambda a, b: clmul_full(a, b) >> 64,
    'clmulr': lambda a, b: (clmul_full(a, b) >> 63) & M64,
    'bclr': lambda a, b: a & ~(1 << (b & 63)) & M64,
    'bset': lambda a, b: a | (1 << (b & 63)),
    'binv': lambda a, b: a ^ (1 << (b & 63)),
    'bext': lambda a, b: (a >> (b & 63)) & 1,
}
R = {
    'clz': lambda a: clz(a, 64), 'ctz': lambda a: ctz(a, 64), 'cpop': lambda a: cpop(a, 64),
    'clzw': lambda a: clz(a & M32, 32), 'ctzw': lambda a: ctz(a & M32, 32),
    'cpopw': lambda a: cpop(a & M32, 32),
    'sext.b': lambda a: sext(a, 8), 'sext.h': lambda a: sext(a, 16), 'zext.h': lambda a: a & 0xffff,
    'orc.b': orcb, 'rev8': rev8,
}
RI = {
    'rori': lambda a, i: ror(a, i, 64), 'roriw': lambda a, i: sext(ror(a & M32, i, 32), 32),
    'slli.uw': lambda a, i: (zext32(a) << i) & M64,
    'bclri': lambda a, i: a & ~(1 << i) & M64, 'bseti': lambda a, i: a | (1 << i),
    'binvi': lambda a, i: a ^ (1 << i), 'bexti': lambda a, i: (a >> i) & 1,
}

VALUES = [0x0, 0x1, 0xffffffffffffffff, 0x8000000000000000, 0x7fffffffffffffff,
          0x00000000ffffffff, 0x0000000080000000, 0x123456789abcdef0, 0xfedcba9876543210,
          0x00ff00000000ff00, 0x0000000000010000]
SHIFTS = [0, 1, 31, 32, 63, 64 + 5, 0xffffffffffffffc1]  # register amounts use the low bits
IMMS64 = [0, 1, 13, 31, 32, 63]
IMMS32 = [0, 1, 13, 31]

def cases():
    out = []
    n = 1
    def emit(line):
        nonlocal n
        if n == 999: n += 1  # 999 reports a failure before the first case (env/test.h)
        out.append(line.format(n=n)); n += 1
    for op, f in RR.items():
        out.append(f'  /* {op} */')
        bs = SHIFTS if op in ('rol', 'ror', 'rolw', 'rorw', 'bclr', 'bset', 'binv', 'bext') else VALUES
        pairs = [(a, b) for a in VALUES[::2] for b in bs[::2]] + [(a, b) for a in VALUES[1::3] for b in bs[1::3]]
        for a, b in pairs:
            emit(f'  TEST_RR {{n}}, {op}, {f(a, b):#x}, {a:#x}, {b:#x}')
        a, b = 0x123456789abcdef0, 0x0f0f0f0f0f0f0f13
        emit(f'  TEST_RR_SRC1_DEST {{n}}, {op}, {f(a, b):#x}, {a:#x}, {b:#x}')
        emit(f'  TEST_RR_SRC2_DEST {{n}}, {op}, {f(a, b):#x}, {a:#x}, {b:#x}')
        emit(f'  TEST_RR_SRC12_DEST {{n}}, {op}, {f(a, a):#x}, {a:#x}')
        emit(f'  TEST_RR_ZERO_DEST {{n}}, {op}, {a:#x}, {b:#x}')
    for op, f in R.items():
        out.append(f'  /* {op} */')
        for a in VALUES + [0x0000000000000100, 0xff00000000000000, 0x00000000000080ff, 0x0102030405060708]:
            # QEMU 7.2 counts ctzw of a zero low word into the high word (see README.md).
            qemu72 = op == 'ctzw' and a & M32 == 0 and a != 0
            emit(f'  TEST_R{"_NOT_QEMU72" if qemu72 else ""} {{n}}, {op}, {f(a):#x}, {a:#x}')
    for op, f in RI.items():
        out.append(f'  /* {op} */')
        imms = IMMS32 if op == 'roriw' else IMMS64
        for a in VALUES[::2] + [0x0f0f0f0f0f0f0f0f]:
            for i in imms:
                emit(f'  TEST_RI {{n}}, {op}, {f(a, i):#x}, {a:#x}, {i}')
    return out

BEGIN = '  /* ---- generated by tools/bitmanip_cases.py: do not edit by hand ---- */'
END = '  /* ---- end of generated cases ---- */'

if __name__ == '__main__':
    body = '\n'.join(cases())
    if '--update' not in sys.argv:
        print(body)
        sys.exit(0)
    path = os.path.join(os.path.dirname(__file__), '..', 'rv64-bitmanip.S')
    text = open(path).read()
    head, rest = text.split(BEGIN + '\n', 1)
    _, tail = rest.split(END, 1)
    open(path, 'w').write(head + BEGIN + '\n' + body + '\n' + END + tail)
