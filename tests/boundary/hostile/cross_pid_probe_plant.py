    # holds thirty processes while it runs: whoever may probe pids (kill(pid, 0) answers
    # "no permission" for a process it cannot signal, "no such process" otherwise) sees them
    import os, time
    children = []
    for _ in range(30):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(1.5)
            os._exit(0)
        children.append(pid)
    time.sleep(1.5)
    return 0
