"""JUnit XML: one testsuite per eval suite, one testcase per metric plus one for run health."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from evals._report_md import fmt, fmt_delta
from evals._results import SuiteVerdict


def junit_report(verdicts: list[SuiteVerdict]) -> str:
    root = ET.Element("testsuites", name="llmops-evals")
    total = fails = errors = 0
    for v in verdicts:
        ts = ET.SubElement(root, "testsuite", name=v.suite)
        n = f = e = 0
        health = ET.SubElement(ts, "testcase", classname=v.suite, name="health")
        n += 1
        if v.reasons:
            f += 1
            fail = ET.SubElement(health, "failure", message="; ".join(v.reasons)[:500])
            fail.text = "\n".join(v.reasons)
        for m in v.metrics:
            n += 1
            tc = ET.SubElement(ts, "testcase", classname=v.suite, name=m.metric)
            detail = (
                f"base={fmt(m.base_mean)} head={fmt(m.head_mean)} delta={fmt_delta(m.delta)}"
                f" ci=[{fmt_delta(m.ci_low)}, {fmt_delta(m.ci_high)}] n={m.n_paired}"
            )
            msg = "; ".join(m.reasons) or detail
            if m.status == "fail":
                f += 1
                ET.SubElement(tc, "failure", message=msg[:500]).text = detail
            elif m.status == "error":
                e += 1
                ET.SubElement(tc, "error", message=msg[:500]).text = detail
            else:
                ET.SubElement(tc, "system-out").text = (msg + "\n" + detail).strip()
        ts.set("tests", str(n))
        ts.set("failures", str(f))
        ts.set("errors", str(e))
        total, fails, errors = total + n, fails + f, errors + e
    root.set("tests", str(total))
    root.set("failures", str(fails))
    root.set("errors", str(errors))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def junit_error(message: str) -> str:
    root = ET.Element("testsuites", name="llmops-evals", tests="1", failures="0", errors="1")
    ts = ET.SubElement(root, "testsuite", name="evals", tests="1", failures="0", errors="1")
    tc = ET.SubElement(ts, "testcase", classname="evals", name="run")
    ET.SubElement(tc, "error", message=message[:500]).text = message
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
