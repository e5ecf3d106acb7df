"""Coordination storage with etcd v3 semantics: the interface in base, backends beside it."""
from mr.kv.base import KV
from mr.settings import Settings


def create_kv(settings: Settings) -> KV:
    """The KV backend the settings name."""
    if settings.kv_backend == "etcd":
        from mr.kv.etcd import EtcdKV
        return EtcdKV(settings.etcd_host, settings.etcd_port, endpoints=settings.etcd_endpoints,
                      ssl=settings.etcd_is_ssl, timeout_s=settings.etcd_timeout_s,
                      ca_file=settings.etcd_ca_file, cert_file=settings.etcd_cert_file,
                      key_file=settings.etcd_key_file, user=settings.etcd_user,
                      password=settings.etcd_password)
    from mr.kv.memory import MemoryKV
    return MemoryKV()
