"""Password word lists: start-up cost (load on first use) and memory, per language.

Run: .venv/bin/python bench/wordlists_bench.py   (prints numbers; asserts nothing)"""

from __future__ import annotations

import resource
import time
import tracemalloc

from iam.passwords import wordlists


def main() -> None:
    t0 = time.perf_counter()
    import wordfreq  # noqa: F401

    print(f"import wordfreq: {time.perf_counter() - t0:.3f} s")
    for tag in ["pl", "sr-Latn", "ro", "vi"]:  # load times without the tracer's overhead
        code = wordlists.language_code(tag)
        t = time.perf_counter()
        wordlists.words(code)
        print(f"{tag:8}: first load {time.perf_counter() - t:.3f} s (untraced)")
    print(
        "max RSS after loading four lists: "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    wordlists.words.cache_clear()
    wordlists._syllables.cache_clear()
    tracemalloc.start()
    for tag in ["pl", "sr-Latn", "ro", "vi"]:
        code = wordlists.language_code(tag)
        t = time.perf_counter()
        n = len(wordlists.words(code))
        took = time.perf_counter() - t
        current, peak = tracemalloc.get_traced_memory()
        print(
            f"{tag:8} ({code}): {n:6d} words kept, first load {took:.3f} s, traced now {current / 1e6:.1f} MB"
        )
    t = time.perf_counter()
    for _ in range(10_000):
        wordlists.is_word("samochod", ["pl", "sr-Latn", "ro", "vi"])
    print(f"is_word over 4 languages: {(time.perf_counter() - t) / 10_000 * 1e6:.1f} µs per check")
    current, peak = tracemalloc.get_traced_memory()
    print(f"traced memory: now {current / 1e6:.1f} MB, peak {peak / 1e6:.1f} MB")
    print(f"max RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
