#!/usr/bin/env python3
"""Run a command on a new pseudo-terminal, answer its password prompt, print what the
terminal showed. Usage: pty_prompt.py PASSWORD COMMAND ARG...

Waits for "Password for" before typing, so the answer reaches the program after it turned
echo off (typing earlier would be echoed by the terminal, not by the program). Exit status:
the command's. Used by tests/backup_cli.rs to test lifeboat's no-echo prompt."""
import os
import pty
import select
import sys
import time


def main():
    password, argv = sys.argv[1], sys.argv[2:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    seen = b""
    answered = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if fd in r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"Password for" in seen:
            time.sleep(1.0)  # let it switch echo off after printing the prompt
            os.write(fd, password.encode() + b"\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(seen.decode("utf-8", "replace"))
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
