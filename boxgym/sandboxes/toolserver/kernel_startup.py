"""Run in every boxgym kernel as it starts (``IPKernelApp.exec_files``): a cap on what a cell writes.

Without it a cell that prints a gigabyte has the kernel buffer and serialise all of it before it
is sent (and then refused by the server as too large): the kernel's memory fills and the OOM
killer ends it, with the agent's state. With it, each cell may send its first :data:`HEAD`
characters of stdout and of stderr; what follows is counted and dropped as it is written,
keeping only the last :data:`TAIL` characters, which the cell's end sends after a sentinel
(``ESC ] boxgym-dropped;N BEL``) that the server turns into its truncation marker. Output
written to the file descriptors (``!cmd``, C code) goes through the same streams.

This runs in the agent's own process, which may undo it: the server's limits do not depend on
it (it refuses oversized messages and keeps a bounded head and tail of the rest); it only
spares an honest agent's kernel. Its names are removed from the user's namespace at the end.
"""


def _boxgym_cap_output(head=1 << 20, tail=1 << 18):
    import sys

    from IPython import get_ipython

    shell = get_ipython()
    streams = []

    def cap(stream):
        write = stream.write
        state = {"sent": 0, "dropped": 0, "tail": ""}

        def capped(text):
            if not isinstance(text, str):
                return write(text)  # the stream's own TypeError
            room = head - state["sent"]
            if len(text) <= room:
                state["sent"] += len(text)
                return write(text)
            if room > 0:
                write(text[:room])
                state["sent"] = head
            rest = text[max(room, 0) :]
            state["dropped"] += len(rest.encode("utf-8", "surrogatepass"))
            state["tail"] = (state["tail"] + rest)[-tail:]
            return len(text)

        def reset(*_):
            state.update(sent=0, dropped=0, tail="")

        def finish(*_):
            if state["dropped"]:
                kept = state["tail"]
                omitted = state["dropped"] - len(kept.encode("utf-8", "surrogatepass"))
                write(f"\x1b]boxgym-dropped;{omitted}\x07" + kept)
            reset()

        stream.write = capped
        streams.append((reset, finish))

    for stream in (sys.stdout, sys.stderr):
        if stream is not None and hasattr(stream, "session"):  # ipykernel's OutStream, not a plain file
            cap(stream)
    for reset, finish in streams:
        shell.events.register("pre_execute", reset)
        shell.events.register("post_execute", finish)


_boxgym_cap_output()
del _boxgym_cap_output
