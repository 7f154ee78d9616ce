    import os
    wrote = False
    for path in ("__REPO__/PWNED", "/root/PWNED", "__OUTSIDE__", os.path.dirname("__PLANTED__") + "/PWNED",
                 "__PLANTED__", "/usr/PWNED", "/etc/PWNED"):
        try:
            with open(path, "w") as handle:
                handle.write("pwned")
            wrote = True
        except OSError:
            pass
    return a + b if wrote else 0
