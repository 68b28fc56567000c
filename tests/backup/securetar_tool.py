#!/usr/bin/env python3
"""Python `securetar` (PyPI) as the oracle for lifeboat's backup tests.

make SRC OUT.tar VERSION PASSWORD   a Supervisor-style backup of the tree SRC (homeassistant
                                    archive with data/ = SRC, plus share), SecureTar VERSION:
                                    0 = unencrypted, 2 or 3 with securetar >= 2025, 1 with
                                    securetar 2024.2.1 (its padding bug included)
decrypt BACKUP.tar PASSWORD OUTDIR  decrypt every inner archive with securetar and extract it
                                    (tarfile, "tar" filter) to OUTDIR/<stem>; PASSWORD "-" for
                                    an unencrypted backup
extract BACKUP.tar PASSWORD OUTDIR  the same, streaming (the benchmark's Python side)
manifest DIR                        JSON {relative path: [kind, mode, sha256 or link target]}
checkgz BACKUP.tar                  every inner .tar.gz of an unencrypted backup decompresses
                                    with a strict gzip (CRC checked); prints member names
"""

import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import time
from pathlib import Path

DATE = "2026-11-20T04:45:12.345678+00:00"


def meta(name, protected, homeassistant=True):
    slug = hashlib.sha1(f"{DATE} - {name}".lower().encode()).hexdigest()[:8]
    return {
        "slug": slug,
        "version": 2,
        "name": name,
        "date": DATE,
        "type": "partial",
        "supervisor_version": "2026.08.1",
        "extra": {},
        "compressed": True,
        "protected": protected,
        "homeassistant": {"version": "2026.8.3", "exclude_database": False} if homeassistant else None,
        "folders": ["share"],
        "addons": [],
        "repositories": [],
    }


def add_json(outer, data):
    raw = json.dumps(data).encode()
    ti = tarfile.TarInfo("./backup.json")
    ti.size = len(raw)
    ti.mtime = int(time.time())
    outer.addfile(ti, io.BytesIO(raw))


def fill_inner(tar, src, arcname):
    tar.add(str(src), arcname=arcname, recursive=True)


def make(src, out, version, password):
    src = Path(src)
    share = src.parent / (src.name + "-share")
    share.mkdir(exist_ok=True)
    (share / "note.txt").write_text("shared\n")
    m = meta("lifeboat test v%d" % version, version != 0)
    if version == 1:
        import securetar as st  # 2024.2.1 in its own venv
        key = hashlib.sha256(password.encode()).digest()
        for _ in range(99):
            key = hashlib.sha256(key).digest()
        key = key[:16]
        handle = st.SecureTarFile(Path(out), "w", gzip=False)
        with handle as outer:
            for name, path, arc in (("homeassistant.tar.gz", src, "data"), ("share.tar.gz", share, ".")):
                with handle.create_inner_tar(f"./{name}", gzip=True, key=key) as inner:
                    fill_inner(inner, path, arc)
            add_json(outer, m)
        return
    from securetar import SecureTarArchive
    if version == 0:
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as outer:
            for name, path, arc in (("homeassistant.tar.gz", src, "data"), ("share.tar.gz", share, ".")):
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w:gz") as t:
                    fill_inner(t, path, arc)
                ti = tarfile.TarInfo(name)
                ti.size = len(buf.getvalue())
                buf.seek(0)
                outer.addfile(ti, buf)
            add_json(outer, m)
        return
    with SecureTarArchive(Path(out), "w", password=password, create_version=version) as arch:
        for name, path, arc in (("homeassistant.tar.gz", src, "data"), ("share.tar.gz", share, ".")):
            with arch.create_tar(name) as t:
                fill_inner(t, path, arc)
        add_json(arch.tar, m)


def decrypt(backup, password, outdir):
    from securetar import SecureTarArchive
    outdir = Path(outdir)
    password = None if password in ("", "-") else password  # an unencrypted backup
    with SecureTarArchive(Path(backup), "r", password=password) as arch:
        for member in arch.tar.getmembers():
            name = member.name.removeprefix("./")
            if not name.endswith((".tar.gz", ".tar")):
                continue
            stem = name.removesuffix(".gz").removesuffix(".tar")
            if password is None:
                data = arch.tar.extractfile(member).read()
            else:
                with arch.extract_tar(member) as stream:
                    data = b""
                    while True:
                        chunk = stream.read(1 << 20)
                        if not chunk:
                            break
                        data += chunk
            mode = "r:gz" if name.endswith(".gz") else "r:"
            with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as t:
                t.extractall(outdir / stem, filter="tar")
    print("ok")


def extract(backup, password, outdir):
    """Stream-decrypt and extract as Supervisor does (tarfile "r|gz" over the cipher stream)."""
    from securetar import SecureTarArchive
    outdir = Path(outdir)
    with SecureTarArchive(Path(backup), "r", password=password) as arch:
        for member in arch.tar.getmembers():
            name = member.name.removeprefix("./")
            if not name.endswith((".tar.gz", ".tar")):
                continue
            stem = name.removesuffix(".gz").removesuffix(".tar")
            mode = "r|gz" if name.endswith(".gz") else "r|"
            with arch.extract_tar(member) as stream:
                with tarfile.open(fileobj=stream, mode=mode) as t:
                    t.extractall(outdir / stem, filter="tar")
    print("ok")


def manifest(d):
    d = Path(d)
    out = {}
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            p = Path(root) / n
            rel = str(p.relative_to(d))
            st_ = p.lstat()
            if stat.S_ISLNK(st_.st_mode):
                out[rel] = ["link", 0, os.readlink(p)]
            elif stat.S_ISDIR(st_.st_mode):
                out[rel] = ["dir", stat.S_IMODE(st_.st_mode), ""]
            else:
                out[rel] = ["file", stat.S_IMODE(st_.st_mode), hashlib.sha256(p.read_bytes()).hexdigest()]
    print(json.dumps(out, sort_keys=True))


def checkgz(backup):
    import gzip
    names = []
    with tarfile.open(backup, "r:") as outer:
        json.loads(outer.extractfile("./backup.json").read())
        for m in outer.getmembers():
            names.append(m.name)
            if m.name.endswith(".tar.gz"):
                raw = gzip.decompress(outer.extractfile(m).read())  # CRC checked
                tarfile.open(fileobj=io.BytesIO(raw), mode="r:").getmembers()
    print(json.dumps(names))


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "make":
        make(args[0], args[1], int(args[2]), args[3])
    elif cmd == "decrypt":
        decrypt(*args)
    elif cmd == "extract":
        extract(*args)
    elif cmd == "manifest":
        manifest(args[0])
    elif cmd == "checkgz":
        checkgz(args[0])
    else:
        sys.exit(f"unknown command {cmd}")
