#!/usr/bin/env python3
"""Reference values for the sampler's generator (tests/test_sampler.c).

splitmix64 and xoshiro256** written from Vigna's reference C
(https://prng.di.unimi.it/splitmix64.c, xoshiro256starstar.c): the state is
four splitmix64 outputs of the seed, and a uniform in [0,1) is the top 53
bits of an output times 2^-53. Prints the first uniforms for a few seeds."""

M = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return x, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M


def xoshiro(seed):
    s, x = [], seed
    for _ in range(4):
        x, z = splitmix64(x)
        s.append(z)
    while True:
        r = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        yield r


# Published first output of splitmix64 seeded with 0.
assert splitmix64(0)[1] == 0xE220A8397B1DCDAF

for seed in (0, 42, 0xFFFFFFFFFFFFFFFF):
    g = xoshiro(seed)
    vals = [(next(g) >> 11) / 2.0**53 for _ in range(4)]
    print(f"seed {seed}: " + ", ".join(v.hex() for v in vals))
