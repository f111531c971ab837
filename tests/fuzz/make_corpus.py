"""Write the regression corpus: the nasty cases of issue 16 and more, by hand, and a fixed
sample of generated mutations; then record what each one does in EXPECTED.tsv.

    .venv/bin/python -m tests.fuzz.make_corpus          # rewrite corpus/ and EXPECTED.tsv

Review the diff of EXPECTED.tsv before committing: it is what the corpus test holds
the lab to (each file refused naming that field, or run).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from tests.fuzz.harness import FUZZ_LIMITS, attempt
from tests.fuzz.mutations import CLOSED, OPEN, dump, generated_corpus, rename_strategy, replace

CORPUS = Path(__file__).parent / "corpus"
EXPECTED = Path(__file__).parent / "EXPECTED.tsv"
GENERATED = 140

SMALL = (
    "name: t\nrequests: 400\nkeyspace: {keys: 1000}\n"
    "limits: {memory: 1GiB, time: 20s}\n"
    "strategies:\n  a: {read: cache-aside, write: invalidate, ttl: 60}\n"
)
TIMED = SMALL.replace("requests: 400", "duration: 2s")
LAUGHS = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10)).replace(
    "*l0", '"lol"'
)


def _with(text: str, extra: str) -> str:
    return text + extra + "\n"


HAND: dict[str, str | bytes] = {
    # encodings and bytes
    "not-utf8.yaml": SMALL.encode() + b"description: caf\xe9\n",
    "utf16.yaml": SMALL.encode("utf-16"),
    "nul-byte.yaml": SMALL.encode() + b"description: a\x00b\n",
    "control-chars.yaml": SMALL.encode() + b"description: \x1b[31mred\x07\n",
    "empty.yaml": b"",
    "only-comments.yaml": b"# nothing here\n",
    "top-level-list.yaml": b"- name: t\n- requests: 1\n",
    "top-level-scalar.yaml": b"just a string\n",
    "two-documents.yaml": (SMALL + "---\n" + SMALL).encode(),
    "tabs.yaml": b"name: t\n\trequests: 5\n",
    "unclosed-flow.yaml": b"name: t\nstrategies: {a: {read: cache-aside\n",
    "bad-escape.yaml": b'name: "t\\q"\n',
    "lone-surrogate.yaml": (SMALL + 'description: "\\ud800"\n').encode(),
    # nesting and aliases
    "deep-description.yaml": _with(SMALL, "description: " + "[" * 5000 + "]" * 5000),
    "deep-mapping.yaml": _with(SMALL, "description: " + "{a: " * 2000 + "1" + "}" * 2000),
    "deep-strategy.yaml": SMALL.replace(
        "ttl: 60}", "ttl: 60, client: " + "[" * 100 + "]" * 100 + "}"
    ),
    "alias-bomb-description.yaml": LAUGHS + SMALL + "description: *l9\n",
    "alias-bomb-top-level.yaml": LAUGHS + SMALL,
    "alias-bomb-faults.yaml": LAUGHS + SMALL + "faults: *l9\n",
    "alias-bomb-seeds.yaml": LAUGHS + SMALL + "seeds: *l9\n",
    "alias-bomb-strategy.yaml": LAUGHS + SMALL.replace("ttl: 60}", "ttl: 60, near: *l9}"),
    "alias-bomb-merge.yaml": LAUGHS + SMALL + "x: {<<: [*l9, *l8]}\n",
    "alias-recursive.yaml": "a: &a [*a]\n" + SMALL,
    "alias-recursive-mapping.yaml": "a: &a {b: *a}\n" + SMALL,
    "alias-undefined.yaml": SMALL + "description: *nowhere\n",
    "alias-long-string.yaml": f"s: &s {'x' * 20_000}\n{SMALL}d: [{'*s, ' * 60}]\n",
    # numbers
    "int-5000-digits.yaml": SMALL.replace("keys: 1000", "keys: 1" + "0" * 5000),
    "int-41-digits.yaml": SMALL.replace("requests: 400", "requests: 1" + "0" * 40),
    "float-inf.yaml": _with(SMALL, "workload: {keys: {distribution: zipf, s: .inf}}"),
    "float-nan.yaml": _with(SMALL, "workload: {mix: {read: .nan}}"),
    "date-as-duration.yaml": SMALL.replace("requests: 400", "duration: 2001-12-14"),
    "bool-as-requests.yaml": SMALL.replace("requests: 400", "requests: true"),
    "requests-float.yaml": SMALL.replace("requests: 400", "requests: 1.5"),
    "requests-1e3-string.yaml": SMALL.replace("requests: 400", "requests: 1e3"),
    # names (they become paths)
    "name-300.yaml": SMALL.replace("name: t", "name: " + "a" * 300),
    "name-uppercase.yaml": SMALL.replace("name: t", "name: Hello"),
    "name-newline.yaml": SMALL.replace("name: t", 'name: "t\\n"'),
    "strategy-300.yaml": SMALL.replace("  a: {", "  " + "b" * 300 + ": {"),
    "strategy-nul.yaml": SMALL.replace("  a: {", '  "a\\0b": {'),
    "strategy-newline.yaml": SMALL.replace("  a: {", '  "a\\nb": {'),
    "strategy-slash.yaml": SMALL.replace("  a: {", '  "../../etc": {'),
    "strategy-backslash.yaml": SMALL.replace("  a: {", '  "a\\\\b": {'),
    "strategy-dot.yaml": SMALL.replace("  a: {", '  ".hidden": {'),
    "strategy-empty.yaml": SMALL.replace("  a: {", '  "": {'),
    "strategy-rtl.yaml": SMALL.replace("  a: {", '  "a\\u202eb": {'),
    "strategy-line-separator.yaml": SMALL.replace("  a: {", '  "a\\u2028b": {'),
    "strategy-utf8-102-bytes.yaml": SMALL.replace("  a: {", "  " + "é" * 51 + ": {"),
    "strategy-int-key.yaml": SMALL.replace("  a: {", "  1: {"),
    "strategies-list.yaml": "name: t\nrequests: 5\nstrategies: [a, b]\n",
    "strategies-empty.yaml": "name: t\nrequests: 5\nstrategies: {}\n",
    # sizes the machine cannot afford
    "keys-1e12.yaml": SMALL.replace("keys: 1000", "keys: 1000000000000"),
    "keys-1e18.yaml": SMALL.replace("keys: 1000", "keys: 1000000000000000000"),
    "rate-1e12.yaml": _with(TIMED, "workload: {arrivals: {rate: 1000000000000/s}}"),
    "instances-1e6.yaml": _with(SMALL, "workload: {instances: 1000000}"),
    "clients-1e7.yaml": _with(TIMED, "workload: {arrivals: {process: closed, clients: 10000000}}"),
    "interval-1ns.yaml": _with(TIMED, "metrics: {interval: 1ns}"),
    "requests-1e15.yaml": SMALL.replace("requests: 400", "requests: 1000000000000000"),
    "duration-1e12s.yaml": SMALL.replace("requests: 400", "duration: 1000000000000s"),
    "concurrency-1e9.yaml": _with(SMALL, "origin: {concurrency: 1000000000}"),
    "value-size-1e6GiB.yaml": SMALL.replace("keys: 1000}", "keys: 1000, value_size: 1000000GiB}"),
    "near-unbounded-many-instances.yaml": _with(
        SMALL.replace("ttl: 60}", "ttl: 60, near: {capacity: null}}").replace(
            "requests: 400", "requests: 1000000"
        ),
        "workload: {instances: 10000}",
    ),
    "lock-poll-1ns.yaml": SMALL.replace(
        "ttl: 60}", "ttl: 1s, stampede: {lock: {poll: 1ns, wait: 1h}}}"
    ).replace("keys: 1000}", "keys: 3}"),
    "flush-interval-1ns.yaml": TIMED.replace(
        "write: invalidate, ttl: 60}", "write: behind, ttl: 60, flush: {interval: 1ns}}"
    ),
    "think-1e9s.yaml": _with(
        TIMED, "workload: {arrivals: {process: closed, clients: 2, think: 1000000000s}}"
    ),
    "origin-slow-1e9.yaml": _with(
        TIMED, "faults: [{kind: origin_slow, at: 1s, duration: 1000s, factor: 1000000000}]"
    ),
    "timeout-1e9s-hang.yaml": TIMED.replace("ttl: 60}", "ttl: 60, client: {timeout: 1000000000s}}")
    + "faults: [{kind: partition, at: 1s, duration: 1000s, mode: hang}]\n",
    "closed-zero-latency.yaml": _with(
        TIMED,
        "workload: {arrivals: {process: closed, clients: 4}}\n"
        "topology: {network: {rtt: {distribution: constant, value: 0}},"
        " service_time: {distribution: constant, value: 0}}",
    ),
    "closed-near-no-think.yaml": TIMED.replace(
        "ttl: 60}", "ttl: 60, near: {capacity: 10000, ttl: 1h}}"
    )
    + "workload: {mix: {read: 1.0}, arrivals: {process: closed, clients: 4}}\n",
    "retries-backoff-huge.yaml": TIMED.replace(
        "ttl: 60}", "ttl: 60, client: {retries: 10, backoff: 1000000s}}"
    )
    + "faults: [{kind: node_crash, at: 1s, duration: 0.5s}]\n",
    # accepted silently before
    "fault-after-run.yaml": _with(TIMED, "faults: [{kind: origin_down, at: 1000s, duration: 1s}]"),
    "fault-after-requests.yaml": _with(
        SMALL, "faults: [{kind: origin_down, at: 10s, duration: 1s}]"
    ),
    "seeds-twice.yaml": _with(SMALL, "seeds: [1, 1]"),
    "seeds-negative.yaml": _with(SMALL, "seeds: [-1]"),
    "seeds-2e64.yaml": _with(SMALL, "seeds: [36893488147419103232]"),
    "seeds-string.yaml": _with(SMALL, "seeds: '1'"),
    "backends-twice.yaml": _with(SMALL, "backends: [sim, sim]"),
    "backends-unknown.yaml": _with(SMALL, "backends: [memcache]"),
    "duration-1ns.yaml": SMALL.replace("requests: 400", "duration: 1ns"),
    "warmup-past-requests.yaml": _with(SMALL, "warmup: 1h"),
    "warmup-past-duration.yaml": _with(TIMED, "warmup: 3s"),
    # tags
    "python-object.yaml": _with(SMALL, "x: !!python/object/apply:os.system ['echo pwned']"),
    "binary-name.yaml": SMALL.replace("name: t", "name: !!binary dA=="),
    "set-tag.yaml": _with(SMALL, "seeds: !!set {1, 2}"),
    "unknown-tag.yaml": _with(SMALL, "seeds: !custom [1]"),
    # ordinary mistakes
    "typo-field.yaml": _with(SMALL, "topology: {capacty: 10}"),
    "key-twice.yaml": _with(SMALL, "requests: 5"),
    "mix-over-one.yaml": _with(SMALL, "workload: {mix: {read: 0.9, write: 0.9}}"),
    "preset-list.yaml": _with(SMALL, "workload: {preset: []}"),
    "preset-mapping.yaml": _with(SMALL, "workload: {preset: {a: 1}}"),
    "bool-as-node.yaml": _with(
        TIMED, "faults: [{kind: node_crash, node: true, at: 1s, duration: 1s}]"
    ),
    "fault-node-out-of-range.yaml": _with(
        TIMED, "faults: [{kind: node_crash, node: 5, at: 1s, duration: 1s}]"
    ),
    "fault-unknown-kind.yaml": _with(TIMED, "faults: [{kind: meteor, at: 1s, duration: 1s}]"),
    "faults-mapping.yaml": _with(TIMED, "faults: {kind: node_crash, at: 1s, duration: 1s}"),
    "limits-tiny.yaml": SMALL.replace(
        "limits: {memory: 1GiB, time: 20s}", "limits: {memory: 1MiB, time: 1ms}"
    ),
    "limits-negative.yaml": SMALL.replace(
        "limits: {memory: 1GiB, time: 20s}", "limits: {memory: -1, time: 20s}"
    ),
    # valid but unusual: must run, within the estimate
    "ok-small.yaml": SMALL,
    "ok-keys-1e12.yaml": SMALL.replace("keys: 1000", "keys: 1000000000000"),
    "ok-unicode-strategy.yaml": SMALL.replace("  a: {", "  café au lait: {"),
    "ok-bom.yaml": b"\xef\xbb\xbf" + SMALL.encode(),
    "ok-fault-inside.yaml": _with(TIMED, "faults: [{kind: node_crash, at: 1s, duration: 5s}]"),
}


def hand_cases() -> list[tuple[str, bytes]]:
    out = [
        (name, text if isinstance(text, bytes) else text.encode()) for name, text in HAND.items()
    ]
    # long lists within the file bound
    faults = "".join("  - {kind: bus_loss, at: 0.5, duration: 1}\n" for _ in range(1000))
    out.append(
        ("many-faults.yaml", (TIMED + "metrics: {interval: 20ms}\nfaults:\n" + faults).encode())
    )
    seeds = ", ".join(str(i) for i in range(5000))
    out.append(("many-seeds.yaml", (SMALL + f"seeds: [{seeds}]\n").encode()))
    many = "".join(f"  s{i}: {{read: cache-aside, write: invalidate}}\n" for i in range(300))
    out.append(("many-strategies.yaml", (SMALL + many).encode()))
    # derived from the fuzz bases: names and sizes inside a full document
    for name, doc in (
        ("base-open.yaml", OPEN),
        ("base-closed.yaml", CLOSED),
        ("base-open-bad-strategy-name.yaml", rename_strategy(OPEN, "a\nb")),
        ("base-closed-think-huge.yaml", replace(CLOSED, ("workload", "arrivals", "think"), "1e9s")),
    ):
        out.append((name, dump(doc).encode()))
    return out


def write_corpus() -> list[Path]:
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    CORPUS.mkdir()
    files = []
    for name, data in [*hand_cases(), *((n, t.encode()) for n, t in generated_corpus(GENERATED))]:
        path = CORPUS / name
        path.write_bytes(data)
        files.append(path)
    return files


def expectation(path: Path, workdir: Path) -> str:
    """`run`, or `refuse <field>` (what the one line names after the file)."""
    outcome = attempt(path, workdir)
    problems = outcome.problems()
    if problems:
        raise SystemExit(f"{path.name}: {problems}")
    if outcome.status == 0:
        return "run"
    rest = outcome.stderr.split(str(path), 1)[1]
    return "refuse " + field_of(rest)


def field_of(rest: str) -> str:
    """The field a refusal names: what follows the file name up to ': ' (a line number
    is dropped)."""
    rest = rest.lstrip(":0123456789").strip()
    return rest.split(": ", 1)[0] if ": " in rest else rest


def main() -> None:
    assert FUZZ_LIMITS
    files = write_corpus()
    lines = []
    for path in sorted(files):
        with tempfile.TemporaryDirectory() as tmp:
            lines.append(f"{path.name}\t{expectation(path, Path(tmp))}")
    EXPECTED.write_text("\n".join(lines) + "\n")
    runs = sum(line.endswith("\trun") for line in lines)
    print(f"{len(files)} files; {runs} run", file=sys.stderr)


if __name__ == "__main__":
    main()
