"""Summarize an Autobahn|Testsuite fuzzingclient report.

Usage: summarize.py [path/to/servers/index.json]

Prints, per agent, a count of case behaviors per section, then every case
whose behavior is not a pass (OK, NON-STRICT, INFORMATIONAL) with its
description, expectation and the reason recorded in the case's own JSON.
NON-STRICT cases and passes with an odd closing handshake are listed too,
because they are worth fixing, but they do not fail the run.

Exit status: 1 if any case failed (or was UNIMPLEMENTED), else 0.
"""

import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

BEHAVIORS = ["OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED"]
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


def case_key(case_id: str) -> tuple[int, ...]:
    # "9.10.2" must sort after "9.2.1": compare numerically, not as text.
    return tuple(int(part) for part in case_id.split("."))


def short(value: object, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plain(html: str) -> str:
    # Case descriptions carry <b>...</b> and the like; drop the tags.
    # Multi-line ones (the 6.4.x message parts) get their continuation lines
    # indented under the first.
    text = re.sub(r"</?[a-z]+>", "", html).strip()
    return text.replace("\n", "\n" + " " * 17)


def describe(case: dict) -> list[str]:
    """The lines explaining one case: what was sent, expected and seen."""
    lines = [
        f"    description: {plain(case['description'])}",
        f"    expectation: {plain(case['expectation'])}",
        f"    result:      {case['result']}",
        f"    close:       {case['resultClose']} ({case['behaviorClose']})",
        # What the server actually did at the close: who closed, with what.
        f"    server sent close code {case['remoteCloseCode']}"
        f" reason {short(case['remoteCloseReason'])};"
        f" closedByMe(client)={case['closedByMe']}"
        f" droppedByMe={case['droppedByMe']} wasClean={case['wasClean']}",
    ]
    if case.get("wasNotCleanReason"):
        lines.append(f"    not clean:   {case['wasNotCleanReason']}")
    if case["behavior"] not in ("OK", "INFORMATIONAL"):
        # Received events vs. the expected ones (keyed by the behavior each
        # outcome earns), trimmed: payloads can be megabytes.
        lines.append(f"    received:    {short(case['received'])}")
        lines.append(f"    expected:    {short(case['expected'])}")
    return lines


def row(label: str, counts: Counter, columns: list[str]) -> str:
    cells = " ".join(f"{counts[c]:>13}" for c in columns)
    return f"{label:>7} {cells}  {sum(counts.values()):>5}"


def main() -> int:
    index_path = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/servers/index.json")
    index = json.loads(index_path.read_text())
    failed = 0

    for agent, cases in sorted(index.items()):
        per_section: dict[str, Counter] = defaultdict(Counter)
        for case_id, entry in cases.items():
            per_section[case_id.split(".")[0]][entry["behavior"]] += 1

        # Any behavior outside the five documented ones still gets a column.
        columns = BEHAVIORS + sorted({b for c in per_section.values() for b in c} - set(BEHAVIORS))
        print(f"Agent {agent}: {len(cases)} cases ({index_path})")
        print("section " + " ".join(f"{c:>13}" for c in columns) + "  total")
        total: Counter = Counter()
        for section in sorted(per_section, key=int):
            counts = per_section[section]
            total.update(counts)
            print(row(section, counts, columns))
        print(row("all", total, columns))

        # Load each listed case's own JSON once; it holds the reasons.
        groups: dict[str, list[tuple[str, dict]]] = defaultdict(list)
        for case_id in sorted(cases, key=case_key):
            entry = cases[case_id]
            if entry["behavior"] not in PASSING:
                group = "FAILING"
            elif entry["behavior"] == "NON-STRICT":
                group = "NON-STRICT (allowed, but worth fixing)"
            elif entry["behaviorClose"] not in ("OK", "INFORMATIONAL"):
                group = "PASSED, but closing behavior was " + entry["behaviorClose"]
            else:
                continue
            detail = json.loads((index_path.parent / entry["reportfile"]).read_text())
            groups[group].append((case_id, detail))

        # Failures first, then NON-STRICT, then the close-behavior notes.
        order = sorted(groups, key=lambda g: (g != "FAILING", g[0] != "N", g))
        for group in order:
            listed = groups[group]
            print(f"\n{group}: {len(listed)}")
            for case_id, detail in listed:
                print(f"  {case_id} [{detail['behavior']}]")
                print("\n".join(describe(detail)))
        failed += len(groups.get("FAILING", []))
        print()

    print(f"{failed} failing case(s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
