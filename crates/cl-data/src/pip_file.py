"""Downloads one file of a package from the pip index without executing anything from it.

`pip download` builds an sdist's metadata, which runs the package's setup.py before any hash
check. This script only reads the index's simple page (PEP 691 JSON or PEP 503 HTML), picks
the file by name, refuses it if the index states another sha256 than the pinned one, downloads
it to `<dest>/<file>.part` while hashing, and renames it into place only when the hash matches.

Usage: python3 pip_file.py NAME FILENAME SHA256 DEST
The index: $CL_PEFT_PIP_INDEX, else $PIP_INDEX_URL, else pip's configured index-url, else
pip's default index.
"""

import hashlib
import html.parser
import json
import os
import re
import ssl
import subprocess
import sys
import urllib.parse
import urllib.request


def index_url():
    for var in ("CL_PEFT_PIP_INDEX", "PIP_INDEX_URL"):
        if os.environ.get(var):
            return os.environ[var]
    for key in ("global.index-url", "download.index-url", "install.index-url"):
        got = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", key],
            capture_output=True,
            text=True,
        )
        if got.returncode == 0 and got.stdout.strip():
            return got.stdout.strip()
    from pip._internal.models.index import PyPI

    return PyPI.simple_url


def context():
    cafile = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    if cafile and os.path.isfile(cafile):
        return ssl.create_default_context(cafile=cafile)
    return ssl.create_default_context()


class Anchors(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)


def open_url(url, accept=None):
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    if url.startswith("https:"):
        return urllib.request.urlopen(request, timeout=180, context=context())
    return urllib.request.urlopen(request, timeout=180)


def find(name, filename):
    """(url, sha256 stated by the index or None) of `filename` on `name`'s project page."""
    project = re.sub(r"[-_.]+", "-", name).lower()
    base = index_url().rstrip("/") + "/"
    page = urllib.parse.urljoin(base, project + "/")
    if page.startswith("file:"):
        page += "index.html"
    with open_url(page, "application/vnd.pypi.simple.v1+json, text/html;q=0.1") as response:
        kind = response.headers.get("Content-Type", "")
        body = response.read().decode("utf-8")
    if "json" in kind:
        for entry in json.loads(body).get("files", []):
            if entry.get("filename") == filename:
                url = urllib.parse.urljoin(page, entry["url"])
                return url, entry.get("hashes", {}).get("sha256")
    else:
        parser = Anchors()
        parser.feed(body)
        for href in parser.links:
            url, _, fragment = urllib.parse.urljoin(page, href).partition("#")
            if urllib.parse.unquote(url.rsplit("/", 1)[-1]) == filename:
                stated = fragment[len("sha256="):] if fragment.startswith("sha256=") else None
                return url, stated
    raise SystemExit(f"`{filename}` is not on the index page {page}")


def main():
    name, filename, sha256, dest = sys.argv[1:5]
    url, stated = find(name, filename)
    if stated is not None and stated.lower() != sha256.lower():
        raise SystemExit(
            f"the index states sha256 {stated} for `{filename}`, the manifest pins {sha256}: not downloaded"
        )
    part = os.path.join(dest, filename + ".part")
    digest = hashlib.sha256()
    with open_url(url) as response, open(part, "wb") as out:
        while True:
            chunk = response.read(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha256.lower():
        os.remove(part)
        raise SystemExit(
            f"`{filename}` from {url} has sha256 {digest.hexdigest()}, the manifest pins {sha256}: removed"
        )
    os.replace(part, os.path.join(dest, filename))


if __name__ == "__main__":
    main()
