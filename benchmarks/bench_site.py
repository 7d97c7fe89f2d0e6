"""Lighthouse scores of the built website, on a phone and on a desktop, served offline from localhost.

Serves _build/html with gzip (as a real host would) on a free loopback port and runs Lighthouse (the npm
package, installed once into .venv/node, as `make install` does for axe-core) with Debian's chromium,
for the home page, chapter 1, chapter 5 and one assignment page, with the mobile preset (a mid-range
phone on a slow 4G link, simulated) and the desktop preset. Prints, for each page and preset, the four
category scores, the Largest Contentful Paint, Total Blocking Time, Cumulative Layout Shift and the
bytes transferred. Build the site first (`make book`). Lighthouse's simulated timings vary by about
10% from run to run on a busy machine; `--runs 3` prints the median of three.

    .venv/bin/python benchmarks/bench_site.py
    .venv/bin/python benchmarks/bench_site.py --pages book/intro.html --presets mobile --json out.json
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
NODE_DIR = ROOT / ".venv" / "node"
LIGHTHOUSE = "lighthouse@13.5.0"
PAGES = ["book/intro.html", "book/01-activations.html", "book/05-optimization.html",
         "book/assignments/02-initialization.html"]
CATEGORIES = ["performance", "accessibility", "best-practices", "seo"]
CHROME_FLAGS = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run"
COMPRESSIBLE = {".html", ".js", ".css", ".svg", ".json", ".txt", ".map", ".xml", ".ico"}


class GzipHandler(http.server.SimpleHTTPRequestHandler):
    """Static files; text files gzip-compressed when the client accepts it (compressed once, kept)."""

    cache: dict[Path, bytes] = {}

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        if (path.suffix in COMPRESSIBLE and path.is_file()
                and "gzip" in self.headers.get("Accept-Encoding", "")):
            body = self.cache.get(path)
            if body is None:
                body = self.cache[path] = gzip.compress(path.read_bytes(), compresslevel=6)
            self.send_response(200)
            self.send_header("Content-Type", self.guess_type(str(path)))
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "max-age=3600")
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(GzipHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def lighthouse_cli() -> Path:
    cli = NODE_DIR / "node_modules" / "lighthouse" / "cli" / "index.js"
    if not cli.is_file():
        if not shutil.which("npm"):
            sys.exit("npm not found: Lighthouse is an npm package (apt-get install npm)")
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund",
                        "--loglevel=error", LIGHTHOUSE], check=True)
    return cli


def run_lighthouse(cli: Path, url: str, preset: str, chrome: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="lighthouse-") as tmp:
        out = Path(tmp) / "report.json"
        cmd = ["node", str(cli), url, "--quiet", "--output=json", f"--output-path={out}",
               f"--only-categories={','.join(CATEGORIES)}", f"--chrome-flags={CHROME_FLAGS}"]
        if preset == "desktop":
            cmd.append("--preset=desktop")
        env = os.environ | {"CHROME_PATH": chrome}
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if r.returncode or not out.is_file():
            raise RuntimeError(f"lighthouse failed on {url} ({preset}):\n{r.stderr[-2000:]}")
        report = json.loads(out.read_text())
    audits = report["audits"]
    return {
        **{c: round(100 * (report["categories"][c]["score"] or 0)) for c in CATEGORIES},
        "lcp_s": audits["largest-contentful-paint"]["numericValue"] / 1000,
        "fcp_s": audits["first-contentful-paint"]["numericValue"] / 1000,
        "tbt_ms": audits["total-blocking-time"]["numericValue"],
        "cls": audits["cumulative-layout-shift"]["numericValue"],
        "kib": audits["total-byte-weight"]["numericValue"] / 1024,
        "failed_a11y": sorted(k for k, a in audits.items()
                              if a.get("score") == 0 and k in _a11y_ids(report)),
    }


def _a11y_ids(report: dict) -> set[str]:
    return {ref["id"] for ref in report["categories"]["accessibility"]["auditRefs"]}


def median_run(runs: list[dict]) -> dict:
    """The run with the median performance score (its numbers belong together)."""
    ordered = sorted(runs, key=lambda r: (r["performance"], -r["lcp_s"]))
    return ordered[len(ordered) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", nargs="+", default=PAGES, help="paths under _build/html")
    parser.add_argument("--presets", nargs="+", default=["mobile", "desktop"], choices=["mobile", "desktop"])
    parser.add_argument("--runs", type=int, default=1, help="runs per page and preset (the median is shown)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--site", type=Path, default=SITE, help="the built site (default: _build/html)")
    args = parser.parse_args()
    if not (args.site / "index.html").is_file():
        sys.exit(f"{args.site} has no index.html: build the site first with `make book`")
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chrome:
        sys.exit("chromium not found: apt-get install chromium")
    cli = lighthouse_cli()
    server, base = serve(args.site)
    results = []
    try:
        print(f"load average before the run: {os.getloadavg()[0]:.1f}  (Lighthouse {LIGHTHOUSE}, {chrome})")
        print(f"{'page':42s} {'preset':7s} {'perf':>4s} {'a11y':>4s} {'bp':>4s} {'seo':>4s}"
              f" {'FCP s':>6s} {'LCP s':>6s} {'TBT ms':>7s} {'CLS':>5s} {'KiB':>7s}")
        for preset in args.presets:
            for p in args.pages:
                r = median_run([run_lighthouse(cli, f"{base}/{p}", preset, chrome) for _ in range(args.runs)])
                results.append({"page": p, "preset": preset, **r})
                print(f"{p:42s} {preset:7s} {r['performance']:4d} {r['accessibility']:4d}"
                      f" {r['best-practices']:4d} {r['seo']:4d} {r['fcp_s']:6.1f} {r['lcp_s']:6.1f}"
                      f" {r['tbt_ms']:7.0f} {r['cls']:5.2f} {r['kib']:7.0f}", flush=True)
                if r["failed_a11y"]:
                    print(f"    failed accessibility audits: {', '.join(r['failed_a11y'])}")
    finally:
        server.shutdown()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if len(args.presets) > 1 or len(args.pages) > 1:
        for preset in args.presets:
            perf = [r["performance"] for r in results if r["preset"] == preset]
            print(f"{preset}: performance median {statistics.median(perf):.0f}"
                  f" (min {min(perf)}, max {max(perf)})")


if __name__ == "__main__":
    main()
