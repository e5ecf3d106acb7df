"""A consumer process that takes messages and never answers them, until it is killed.

Run by the fault tests: ``python -m tests.integration.hold_messages NSQD TOPIC CHANNEL N``.
It prints each body it takes, one per line, so the test knows when it holds N messages.
"""
from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

import gevent  # noqa: E402

from mr.queue.nsq import NsqQueue  # noqa: E402


def main(nsqd: str, topic: str, channel: str, max_in_flight: str) -> None:
    def hold(message):
        print(message.body.decode(), flush=True)
        gevent.sleep(3600)

    NsqQueue([nsqd]).consume(topic, channel, hold, max_in_flight=int(max_in_flight))
    gevent.sleep(3600)


if __name__ == "__main__":
    main(*sys.argv[1:])
