"""Message delivery with NSQ semantics: the interface in base, backends beside it."""
from mr.queue.base import Queue
from mr.settings import Settings


def create_queue(settings: Settings) -> Queue:
    """The queue backend the settings name."""
    if settings.queue_backend == "nsq":
        from mr.queue.nsq import NsqQueue
        return NsqQueue(settings.nsqd_hosts, settings.nsqlookupd_http_addresses,
                        tls=settings.nsqd_tls, ca_file=settings.nsqd_ca_file,
                        cert_file=settings.nsqd_cert_file, key_file=settings.nsqd_key_file)
    from mr.queue.memory import MemoryQueue
    return MemoryQueue(message_timeout_s=settings.message_timeout_s)
