"""pytest's JUnit file (--junitxml) with the verdict in it, for CI: each behaviour test's
``system-out`` carries its behaviour, its verdict and evidence, and an ``[[ATTACHMENT|path]]`` line
per kept pcap (the convention Jenkins' JUnit attachments and GitLab's artifacts read); the state of
each behaviour and the verdict are properties of the test suite.

Under xunit2 (pytest's default family) a test case may not hold properties (Jenkins' JUnit 10
schema, which pytest's own tests validate against), so the test cases' user properties are left
out there: the behaviour is in system-out instead. The file is rewritten once, after pytest wrote it.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.report.model import Run
from harness.verdict import Record

#: Characters XML 1.0 cannot hold, even escaped (pytest's junitxml shows them the same way).
_ILLEGAL = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: str) -> str:
    return _ILLEGAL.sub(lambda m: f"#x{ord(m.group()):02X}", text)


def testcase_key(nodeid: str, prefix: str | None) -> tuple[str, str]:
    """(classname, name) pytest's junitxml gives a test: the file as a dotted path, any classes,
    then the function with its parameters."""
    path, *names = nodeid.split("::")
    dotted = path.replace("/", ".").removesuffix(".py")
    return ".".join([*([prefix] if prefix else []), dotted, *names[:-1]]), names[-1] if names else path


def system_out(record: Record, run: Run) -> str:
    test = run.evidence(record)
    lines = [f"echolab behaviour: {record.behaviour}", f"echolab outcome: {record.outcome}"]
    if record.outcome != "passed" and record.reason:
        lines.append(f"echolab reason: {record.reason}")
    if test.evidence:
        lines += ["", test.evidence, ""]
    lines += [f"[[ATTACHMENT|{os.path.abspath(path)}]]" for path, _ in test.captures]
    return _xml_safe("\n".join(lines))


def enrich(path: Path, run: Run, family: str, prefix: str | None) -> None:
    tree = ET.parse(path)
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    records = {testcase_key(record.nodeid, prefix): record for _, _, mine in run.behaviours for record in mine}
    for suite in suites:
        if run.behaviours:  # a run of behaviour tests: its verdict
            properties = suite.find("properties")
            if properties is None:
                properties = ET.Element("properties")
                suite.insert(0, properties)
            for name, state, _ in run.behaviours:
                ET.SubElement(properties, "property", name=f"echolab.behaviour.{name}", value=state)
            ET.SubElement(properties, "property", name="echolab.verdict", value=run.lines[-1][0])
        for case in suite.iter("testcase"):
            if family == "xunit2":
                for own in case.findall("properties"):
                    case.remove(own)
            record = records.get((case.get("classname", ""), case.get("name", "")))
            if record is None:
                continue
            text = system_out(record, run)
            out = case.find("system-out")
            if out is None:
                ET.SubElement(case, "system-out").text = text
            else:
                out.text = f"{out.text or ''}\n{text}"
    tree.write(path, encoding="utf-8", xml_declaration=True)
