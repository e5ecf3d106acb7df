"""What a worker refuses to take for an invocation message: anything but a list of this
version's fields, named as such, so that its handler drops it rather than failing on it."""
import pytest

from mr import codec
from mr.engine.messages import MAP, InvocationMessage

MESSAGE = InvocationMessage("w", "r", "i", MAP, "s")


@pytest.mark.parametrize("fields", [
    [], {"workflow": "w"}, "text", 7, [2, *codec.decode(MESSAGE.encode())[1:]],
], ids=["empty", "a map", "a string", "a number", "another version"])
def test_a_body_that_is_not_a_message_of_this_version_is_refused(fields):
    with pytest.raises(ValueError, match="^not an invocation message of this version$"):
        InvocationMessage.decode(codec.encode(fields))


def test_a_message_decodes_to_itself():
    assert InvocationMessage.decode(MESSAGE.encode()) == MESSAGE


@pytest.mark.parametrize("message", [
    InvocationMessage("w", "r", "i", MAP, "s", record=(12, b"record")),
    InvocationMessage("w", "r", "i", MAP, "s", redelivered=True, record=(12, b"record")),
    InvocationMessage("w", "r", "i", MAP, "s", partition=0),
    InvocationMessage("w", "r", "i", MAP, "s", redelivered=True),
], ids=["a record", "redelivered with a record", "partition 0", "redelivered"])
def test_a_message_with_its_optional_fields_decodes_to_itself(message):
    assert InvocationMessage.decode(message.encode()) == message


def test_a_message_without_optional_fields_encodes_none_of_them():
    assert len(codec.decode(MESSAGE.encode())) == 9
