"""Sending one email over SMTP, retried as the webhook's POST is.

What may succeed later is retried with the same backoff: no answer, a dropped connection, a
transient (4xx) reply; a permanent (5xx) reply, such as an unknown recipient, is final. The
standard library's smtplib is cooperative in a gevent-patched process.
"""
from __future__ import annotations

import email.message
import email.utils
import smtplib
import ssl
import time

from mr.results.http_post import retry_delay_s
from mr.settings import Settings


class EmailDeliveryError(Exception):
    """The email could not be handed to the SMTP server."""

    def __init__(self, address: str, attempts: int, last_error: str):
        super().__init__(f"could not send the email to {address} after {attempts} "
                         f"attempt{'s' if attempts != 1 else ''}: {last_error}")


def send_email(settings: Settings, address: str, subject: str, text: str, *, attempts: int,
               backoff_s: float, timeout_s: float) -> None:
    """Send a plain-text email to ``address`` through MR_SMTP_HOST; at most ``attempts``
    times, raising :class:`EmailDeliveryError` when none succeeds."""
    message = email.message.EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = address
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = email.utils.make_msgid(domain=settings.smtp_from.rsplit("@", 1)[-1])
    message.set_content(text)
    for attempt in range(1, attempts + 1):
        try:
            _send(settings, message, timeout_s)
            return
        except smtplib.SMTPResponseException as error:
            last_error = f"SMTP {error.smtp_code} {_text(error.smtp_error)}"
            if error.smtp_code >= 500 or attempt == attempts:
                raise EmailDeliveryError(address, attempt, last_error) from None
        except smtplib.SMTPRecipientsRefused as error:
            code, reply = next(iter(error.recipients.values()))
            last_error = f"SMTP {code} {_text(reply)}"
            if code >= 500 or attempt == attempts:
                raise EmailDeliveryError(address, attempt, last_error) from None
        except (OSError, smtplib.SMTPException) as error:  # no answer, or the session broke
            last_error = f"{type(error).__name__}: {error}"
            if attempt == attempts:
                raise EmailDeliveryError(address, attempt, last_error) from None
        time.sleep(retry_delay_s(attempt, backoff_s, None))


def _send(settings: Settings, message: email.message.EmailMessage, timeout_s: float) -> None:
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout_s) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(message)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
