#!/usr/bin/env python3
"""Load a synprof report page from disk in headless Chromium and check it like a reader would.

    check_report.py PAGE.html [--screenshot OUT.png] [--full-page | --section ID] [--chromium PATH]

Checks: no console errors, no uncaught exceptions, no failed loads; every <img> decoded with
a nonzero natural size; no reference to the network; every local link (CSV, SVG, PNG) exists;
every linked SVG parses as XML. Prints a JSON summary; exits 1 with the problems listed.

Talks to Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON
messages separated by NUL on fds 3 and 4), so it needs only the standard library.
"""
import argparse
import base64
import fcntl
import json
import os
import pathlib
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]

PAGE_FACTS = """(() => {
  const images = [...document.images];
  const attrs = [...document.querySelectorAll('[src],[href]')].map(e => e.getAttribute('src') || e.getAttribute('href'));
  return {
    title: document.title,
    images: images.map(i => ({src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth, height: i.naturalHeight})),
    local_links: attrs.filter(u => u && !u.startsWith('#') && !/^[a-z][a-z0-9+.-]*:/i.test(u) && !u.startsWith('//')),
    network_refs: attrs.filter(u => u && /^(https?:|wss?:|\\/\\/)/i.test(u)),
    headings: [...document.querySelectorAll('h1, h2')].map(h => h.textContent.trim()),
    tables: document.querySelectorAll('table').length,
    height: document.documentElement.scrollHeight,
  };
})()"""


class Chromium:
    def __init__(self, exe, profile_dir, timeout_s):
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def wire_fds():  # runs in the child: its fd 3 reads commands, fd 4 writes replies
            a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [exe, *FLAGS, f"--user-data-dir={profile_dir}", "about:blank"]
        self.proc = subprocess.Popen(
            args, preexec_fn=wire_fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self.timeout_s = timeout_s
        self.buffer = b""
        self.next_id = 0
        self.events = []

    def _read(self, deadline):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self.from_child], [], [], left)
            if ready:
                chunk = os.read(self.from_child, 1 << 20)
                if not chunk:
                    err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
                    raise RuntimeError(f"Chromium closed the DevTools pipe. {err[-2000:]}")
                self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def wait_for(self, predicate, timeout_s=None):
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        for i, event in enumerate(self.events):
            if predicate(event):
                return self.events.pop(i)
        while True:
            message = self._read(deadline)
            if predicate(message):
                return message
            if "method" in message:
                self.events.append(message)

    def send(self, method, params=None, session=None):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_child, json.dumps(message).encode() + b"\0")
        reply = self.wait_for(lambda m: m.get("id") == message["id"])
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def close(self):
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def console_problems(events, session):
    problems = []
    for e in events:
        if e.get("sessionId") != session:
            continue
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            problems.append(f"console.{p['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = p.get("exceptionDetails", {})
            problems.append(f"uncaught exception: {details.get('exception', {}).get('description', details.get('text'))}")
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            problems.append(f"console error ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.loadingFailed" and not p.get("canceled"):
            problems.append(f"failed to load a resource: {p.get('errorText')} ({p.get('type')})")
    return problems


def check(page, chromium, screenshot, full_page, width, timeout_s, section=None):
    page = page.resolve()
    problems = []
    with tempfile.TemporaryDirectory(prefix="synprof-chromium-") as profile_dir:
        browser = Chromium(chromium, profile_dir, timeout_s)
        try:
            target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Log", "Page", "Network"):
                browser.send(f"{domain}.enable", session=session)
            metrics = {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}
            browser.send("Emulation.setDeviceMetricsOverride", metrics, session=session)
            nav = browser.send("Page.navigate", {"url": page.as_uri()}, session=session)
            if nav.get("errorText"):
                problems.append(f"navigation failed: {nav['errorText']}")
            browser.wait_for(lambda m: m.get("method") == "Page.loadEventFired" and m.get("sessionId") == session)
            time.sleep(0.3)  # let late console messages arrive
            facts = browser.send(
                "Runtime.evaluate", {"expression": PAGE_FACTS, "returnByValue": True}, session=session
            )["result"]["value"]
            if screenshot:
                height = facts["height"] if full_page or section else min(facts["height"], 2200)
                metrics["height"] = height
                browser.send("Emulation.setDeviceMetricsOverride", metrics, session=session)
                time.sleep(0.2)
                params = {"format": "png", "captureBeyondViewport": True}
                if section:
                    box = browser.send(
                        "Runtime.evaluate",
                        {
                            "expression": f"(() => {{ const e = document.getElementById({json.dumps(section)}); "
                            "if (!e) return null; const r = e.getBoundingClientRect(); "
                            "return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; })()",
                            "returnByValue": True,
                        },
                        session=session,
                    )["result"].get("value")
                    if not box:
                        problems.append(f"no element with id {section!r} to screenshot")
                    else:
                        params["clip"] = dict(box, scale=1)
                shot = browser.send("Page.captureScreenshot", params, session=session)
                pathlib.Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
            # Drain what is already queued before reading the events.
            try:
                browser.wait_for(lambda m: False, timeout_s=0.2)
            except TimeoutError:
                pass
            problems += console_problems(browser.events, session)
        finally:
            browser.close()

    if not facts["images"]:
        problems.append("the page has no images")
    for img in facts["images"]:
        if not (img["complete"] and img["width"] > 0 and img["height"] > 0):
            problems.append(f"image did not load: {img['src']}")
    for ref in facts["network_refs"]:
        problems.append(f"the page refers to the network: {ref}")
    for link in sorted(set(facts["local_links"])):
        path = page.parent / urllib.parse.unquote(link.split("#")[0])
        if not path.is_file():
            problems.append(f"link to a missing file: {link}")
        elif path.suffix == ".svg":
            try:
                root = ET.parse(path).getroot()
                if not root.tag.endswith("svg"):
                    problems.append(f"{link} is not an SVG document")
            except ET.ParseError as e:
                problems.append(f"{link} is not well-formed XML: {e}")
    summary = {
        "page": str(page),
        "title": facts["title"],
        "images": len(facts["images"]),
        "tables": facts["tables"],
        "local_links": len(set(facts["local_links"])),
        "headings": facts["headings"],
        "screenshot": screenshot,
        "problems": problems,
    }
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", type=pathlib.Path)
    ap.add_argument("--screenshot", help="write a PNG screenshot here")
    ap.add_argument("--full-page", action="store_true", help="screenshot the whole page, not its top 2200 px")
    ap.add_argument("--section", help="screenshot only the element with this id (e.g. fidelity)")
    ap.add_argument("--width", type=int, default=1200, help="viewport width in CSS pixels")
    ap.add_argument("--chromium", default=os.environ.get("SYNPROF_CHROMIUM") or shutil.which("chromium") or "chromium")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for any one browser step")
    args = ap.parse_args()
    if not args.page.is_file():
        sys.exit(f"{args.page}: no such page")
    summary = check(args.page, args.chromium, args.screenshot, args.full_page, args.width, args.timeout, args.section)
    print(json.dumps(summary, indent=2))
    if summary["problems"]:
        print(f"{len(summary['problems'])} problem(s) on {args.page}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
