"""The official openai client against lm serve (tests/test_serve.c runs it).

usage: serve_openai.py BASE_URL   (e.g. http://127.0.0.1:8080/v1)
Prints "ok" when chat and completions, streamed and not, answer with text
and usage; raises otherwise."""
import sys

import openai

client = openai.OpenAI(base_url=sys.argv[1], api_key="sekrit", max_retries=0, timeout=120)
messages = [{"role": "user", "content": "What is the capital of France?"}]

chat = client.chat.completions.create(model="default", messages=messages, temperature=0, max_tokens=16)
whole = chat.choices[0].message.content
assert whole and chat.choices[0].message.role == "assistant", chat
assert chat.usage.completion_tokens > 0 and chat.usage.prompt_tokens > 0, chat.usage
assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens

parts, usage, finish = [], None, None
for chunk in client.chat.completions.create(model="default", messages=messages, temperature=0, max_tokens=16,
                                            stream=True, stream_options={"include_usage": True}):
    if chunk.usage:
        usage = chunk.usage
    for c in chunk.choices:
        parts.append(c.delta.content or "")
        finish = c.finish_reason or finish
assert "".join(parts) == whole, ("".join(parts), whole)
assert usage and usage.completion_tokens == chat.usage.completion_tokens, usage
assert finish in ("stop", "length"), finish

comp = client.completions.create(model="default", prompt="The capital of France is", temperature=0, max_tokens=8)
assert comp.choices[0].text and comp.usage.completion_tokens == 8, comp
streamed = "".join(c.choices[0].text for c in client.completions.create(
    model="default", prompt="The capital of France is", temperature=0, max_tokens=8, stream=True) if c.choices)
assert streamed == comp.choices[0].text, (streamed, comp.choices[0].text)

models = client.models.list()
assert len(models.data) == 1, models

try:
    openai.OpenAI(base_url=sys.argv[1], api_key="wrong", max_retries=0).models.list()
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError:
    pass
print("ok")
