"""The prompt module: templates, placeholders and the content-part form."""

from __future__ import annotations

import pytest

from editjudge import prompts


@pytest.mark.parametrize("name", sorted(prompts.BUILTIN_TEMPLATES))
def test_builtin_templates_have_two_images_in_order(name: str) -> None:
    messages = prompts.build_messages("make the {sky} purple", name)
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert user.count(prompts.IMAGE_PLACEHOLDER) == 2
    assert "make the {sky} purple" in user  # braces survive: no str.format
    assert user.index("input image") < user.index("edited image")
    assert prompts.THINK_OPEN in messages[0]["content"] and prompts.ANSWER_OPEN in messages[0]["content"]


def test_default_is_english() -> None:
    assert prompts.build_messages("x") == prompts.build_messages("x", "en")
    assert "Edit instruction" in prompts.build_messages("x")[1]["content"]


def test_user_template_file(tmp_path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("system: judge\nuser: 'Do {instruction}. A <image> B <image>'\n")
    tpl = prompts.load_template(str(path))
    assert prompts.build_messages("it", tpl)[1]["content"] == "Do it. A <image> B <image>"


@pytest.mark.parametrize(
    "user, message",
    [("{instruction} <image>", "exactly 2"), ("<image><image>", "{instruction}"), ("{instruction}" + "<image>" * 3, "found 3")],
)
def test_bad_templates_are_refused(tmp_path, user: str, message: str) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"system": "s", "user": %r}'.replace("%r", '"' + user + '"'))
    with pytest.raises(ValueError, match=message):
        prompts.load_template(str(path))


def test_unknown_template_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"\['demo', 'en', 'zh'\]"):
        prompts.load_template("fr")


def test_content_parts_keep_image_order() -> None:
    parts = prompts.to_content_parts([{"role": "user", "content": "a<image>b<image>"}])[0]["content"]
    assert parts == [
        {"type": "text", "text": "a"},
        {"type": "image"},
        {"type": "text", "text": "b"},
        {"type": "image"},
    ]


def test_format_answer_round_trips_through_the_parser() -> None:
    from editjudge.answer import parse_response

    assert parse_response(prompts.format_answer(7, "ok")).score == 7
    with pytest.raises(ValueError):
        prompts.format_answer(10)
