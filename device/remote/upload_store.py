"""The device side of the content-addressed upload (host/targets/transfer.py sends this source
to the device's python; stdlib only, Python 3.8 compatible).
`plan STORE MAX_AGE SHA...`: one JSON object {sha: [held, partial length, sha256 of the
partial]} after removing partials nobody wants that are older than MAX_AGE (and the .tmp-* files
of older versions, never resumable).
`commit STORE SHA...`: hash .part-SHA, rename it to SHA when it matches, else remove it; prints
"ok SHA" or "bad SHA DIGEST"."""


def main():
    import hashlib, json, os, sys, time
    mode, store = sys.argv[1], sys.argv[2]
    def digest(p):
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for b in iter(lambda: f.read(1 << 20), b""):
                h.update(b)
        return h.hexdigest()
    if mode == "plan":
        max_age, wanted = float(sys.argv[3]), sys.argv[4:]
        names = set(os.listdir(store))
        now = time.time()
        for n in names:
            p = os.path.join(store, n)
            old = now - os.path.getmtime(p) > max_age
            if n.startswith(".tmp-") or (n.startswith(".part-") and n[6:] not in wanted and old):
                os.remove(p)
        out = {}
        for sha in wanted:
            part = os.path.join(store, ".part-" + sha)
            has = ".part-" + sha in names and os.path.exists(part)
            out[sha] = [sha in names, os.path.getsize(part) if has else 0,
                        digest(part) if has else None]
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        for sha in sys.argv[3:]:
            part, final = os.path.join(store, ".part-" + sha), os.path.join(store, sha)
            got = digest(part)
            if got == sha:
                os.rename(part, final)
                sys.stdout.write("ok " + sha + "\n")
            else:
                os.remove(part)
                sys.stdout.write("bad " + sha + " " + got + "\n")


if __name__ == "__main__":
    main()
