#!/usr/bin/env python3
"""A scripted model service for end-to-end tests of real coding-agent CLIs (no AI, no network).

It listens on 127.0.0.1 (port 0: the kernel picks one), prints `PORT <n>` on stdout, and answers
the HTTP APIs the CLIs speak, so the real claude, codex, gemini, aider, opencode, copilot and qwen
binaries really run their tools and edit files:

  POST /v1/messages                  Anthropic Messages, JSON or SSE (claude)
  POST /v1/responses                 OpenAI Responses, SSE (codex)
  POST /v1/chat/completions          OpenAI Chat Completions, JSON or SSE: aider (via litellm; edit
                                     blocks in text), opencode, Copilot CLI, qwen (tool calls)
  POST /v1beta/models/M:generateContent, :streamGenerateContent   Gemini (gemini)

The script is the quickstart example `reproduce-deterministic/examples/shipping`: in the
reproduce stage the agent writes `tests/test_fixci_repro.py` (a 5 kg parcel must be heavy) and
`repro.json`; in the fix stage it changes `>` to `>=` in `shipping/rates.py` and writes
`root-cause.md`. The stage is read from fixci's rendered prompt ("You are reproducing" / "You are
fixing"), the stage directory and worktree from the paths the prompt names, and the step from the
number of tool results already in the conversation. One tool call per model turn, then a final
text answer. Requests that are not the agent's main loop (titles, quota checks) get a short text.

Every response reports fixed token counts (see USAGE) so tests can check what fixci parsed.
`--log FILE` appends each request body as one JSON line (for debugging a CLI's requests).

Python standard library only.
"""
import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Token counts reported with every answer of the main loop.
USAGE = {"input": 1000, "output": 50, "cache_read": 200, "cache_write": 100}

REPRO_TEST = '''import unittest

from shipping.rates import parcel_price_cents


class FiveKiloParcel(unittest.TestCase):
    def test_five_kg_parcel_is_heavy(self):
        # The carrier's table: heavy "from 5 kg". CI saw a 5 kg parcel priced as light.
        self.assertEqual(parcel_price_cents(5, "domestic"), 490 + 600)


if __name__ == "__main__":
    unittest.main()
'''
REPRO_JSON = json.dumps(
    {"test_file": "tests/test_fixci_repro.py", "command": "python3 -m unittest tests.test_fixci_repro"}
)
ROOT_CAUSE = (
    "`is_heavy` compared with `>`, so a parcel of exactly `LIGHT_LIMIT_KG` (5 kg) was priced as "
    "light; the carrier's table makes parcels heavy from 5 kg. The fix compares with `>=`.\n"
)
BUGGY = "return weight_kg > LIGHT_LIMIT_KG"
FIXED = "return weight_kg >= LIGHT_LIMIT_KG"


def plan(text):
    """The scripted steps for fixci's prompt `text`, or None when it is no fixci stage prompt.

    Steps: ("write", path, content), ("read", path), ("edit", path, old, new). Paths are
    absolute; `wt` is the worktree. Returns (stage, worktree, stage_dir, steps).
    """
    wt = re.search(r"in the repository at `([^`]+)`", text)
    if "You are reproducing a CI failure" in text:
        out = re.search(r"Write `([^`]+)/repro\.json`", text)
        if not (wt and out):
            return None
        wt, out = wt.group(1), out.group(1)
        return ("reproduce", wt, out, [
            ("write", f"{wt}/tests/test_fixci_repro.py", REPRO_TEST),
            ("write", f"{out}/repro.json", REPRO_JSON),
        ])
    if "You are fixing a CI failure" in text:
        out = re.search(r"to `([^`]+)/root-cause\.md`", text)
        if not (wt and out):
            return None
        wt, out = wt.group(1), out.group(1)
        return ("fix", wt, out, [
            ("read", f"{wt}/shipping/rates.py"),
            ("edit", f"{wt}/shipping/rates.py", BUGGY, FIXED),
            ("write", f"{out}/root-cause.md", ROOT_CAUSE),
        ])
    return None


def final_text(stage):
    if stage == "reproduce":
        return "I wrote tests/test_fixci_repro.py, which fails: a 5 kg parcel is priced as light."
    return "Fixed: `is_heavy` now uses `>=`. " + ROOT_CAUSE


def shell_script(step):
    """A POSIX shell command doing `step` (for CLIs whose tool is a shell)."""
    kind, path = step[0], step[1]
    if kind == "write":
        d = path.rsplit("/", 1)[0]
        return f"mkdir -p '{d}' && cat > '{path}' <<'FIXCI_EOF'\n{step[2]}\nFIXCI_EOF"
    if kind == "read":
        return f"cat '{path}'"
    old, new = step[2], step[3]
    return (
        "python3 - <<'FIXCI_EOF'\nimport pathlib\n"
        f"p = pathlib.Path({path!r})\n"
        f"p.write_text(p.read_text().replace({old!r}, {new!r}))\nFIXCI_EOF"
    )


def edit_block(step, wt, search_replace):
    """`step` as an aider edit block: SEARCH/REPLACE (diff formats) or a whole file. Paths are
    relative to the worktree; a file for the stage directory (outside the repository, where
    aider cannot write) goes to `.fixci/` in the worktree, which fixci also reads."""
    kind, path = step[0], step[1]
    rel = path[len(wt) + 1:] if path.startswith(wt + "/") else ".fixci/" + path.rsplit("/", 1)[1]
    fence = "```"
    if kind == "write":
        if search_replace:
            return f"{rel}\n{fence}\n<<<<<<< SEARCH\n=======\n{step[2].rstrip()}\n>>>>>>> REPLACE\n{fence}\n"
        return f"{rel}\n{fence}\n{step[2].rstrip()}\n{fence}\n"
    old, new = step[2], step[3]
    if search_replace:
        return f"{rel}\n{fence}\n<<<<<<< SEARCH\n    {old}\n=======\n    {new}\n>>>>>>> REPLACE\n{fence}\n"
    with open(path) as f:
        whole = f.read().replace(old, new)
    return f"{rel}\n{fence}\n{whole.rstrip()}\n{fence}\n"


def flatten(x):
    """All text inside a JSON value (strings of nested lists/dicts), joined."""
    if isinstance(x, str):
        return x
    if isinstance(x, list):
        return "\n".join(flatten(i) for i in x)
    if isinstance(x, dict):
        return "\n".join(flatten(v) for v in x.values())
    return ""


# Side agents some CLIs run next to the main loop, recognised by their system prompt: they get
# a short text answer, never the scripted tool calls (qwen's memory extraction after a turn).
SIDE_AGENTS = ("managed memory extraction",)

# Chat Completions tools by step, as the CLIs name them (opencode: write/read/edit; Copilot
# CLI: create/view/edit; qwen: write_file/read_file/edit), and their arguments' names.
CHAT_TOOLS = {
    "write": ("write", "write_file", "create"),
    "read": ("read", "read_file", "view"),
    "edit": ("edit", "replace", "str_replace"),
}
CHAT_ARGS = {
    "path": ("filePath", "file_path", "path", "absolute_path"),
    "content": ("content", "file_text"),
    "old": ("oldString", "old_string", "old_str"),
    "new": ("newString", "new_string", "new_str"),
}


def chat_tool_call(step, tools, n):
    """`step` as a Chat Completions tool call to the CLI's own tool among `tools` (the request's
    `tools` list), with the argument names that tool's schema declares."""
    by_name = {}
    for t in tools:
        f = t.get("function", t)
        by_name[f.get("name")] = (f.get("parameters") or {}).get("properties") or {}
    name = next((c for c in CHAT_TOOLS[step[0]] if c in by_name), None)
    if name is None:
        raise ValueError(f"no {step[0]} tool among {sorted(by_name)}")
    props = by_name[name]
    values = {"path": step[1]}
    if step[0] == "write":
        values["content"] = step[2]
    elif step[0] == "edit":
        values["old"], values["new"] = step[2], step[3]
    args = {}
    for key, value in values.items():
        arg = next((a for a in CHAT_ARGS[key] if a in props), None)
        if arg is None:
            raise ValueError(f"tool {name} has no argument for {key}: {sorted(props)}")
        args[arg] = value
    return {"id": f"call_{n + 1:02d}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fixci-model-server/1"

    def log_message(self, fmt, *args):  # quiet: tests read stdout for the port only
        if self.server.verbose:
            sys.stderr.write("model-server: " + (fmt % args) + "\n")

    # --- plumbing -------------------------------------------------------------------------
    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = self.read_chunked()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        if self.server.log:
            with self.server.lock, open(self.server.log, "a") as f:
                f.write(json.dumps({"path": self.path, "body": body}) + "\n")
        return body

    def read_chunked(self):
        out = b""
        while True:
            size = int(self.rfile.readline().strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    def send_json(self, obj, status=200):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_sse(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def sse(self, data, event=None):
        chunk = ""
        if event:
            chunk += f"event: {event}\n"
        chunk += f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
        self.wfile.write(chunk.encode())
        self.wfile.flush()

    def do_GET(self):
        # Model listings (litellm, gemini) and health checks.
        if "models" in self.path:
            return self.send_json({"data": [{"id": "fixci-scripted", "object": "model"}], "models": []})
        self.send_json({"ok": True})

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        body = self.read_body()
        path = self.path.split("?")[0]
        try:
            if path.endswith("/messages/count_tokens"):
                return self.send_json({"input_tokens": USAGE["input"]})
            if path.endswith("/messages"):
                return self.anthropic(body)
            if path.endswith("/responses"):
                return self.openai_responses(body)
            if path.endswith("/chat/completions"):
                return self.chat(body)
            if ":generateContent" in path or ":streamGenerateContent" in path:
                return self.gemini(body, stream=":streamGenerateContent" in path)
            if ":countTokens" in path:
                return self.send_json({"totalTokens": USAGE["input"]})
        except (BrokenPipeError, ConnectionResetError):
            return
        self.send_json({"error": {"message": f"no scripted answer for {path}"}}, status=404)

    # --- Anthropic Messages (claude) ------------------------------------------------------
    def anthropic(self, body):
        msgs = body.get("messages", [])
        first_user = next((m for m in msgs if m.get("role") == "user"), {})
        p = plan(flatten(first_user.get("content"))) if body.get("tools") else None
        content, stop = [], "end_turn"
        if p is None:
            content = [{"type": "text", "text": "fixci scripted model"}]
        else:
            stage, _wt, _out, steps = p
            done = sum(
                1 for m in msgs if m.get("role") == "assistant" and isinstance(m.get("content"), list)
                for c in m["content"] if c.get("type") == "tool_use"
            )
            if done < len(steps):
                step = steps[done]
                name, inp = {
                    "write": lambda s: ("Write", {"file_path": s[1], "content": s[2]}),
                    "read": lambda s: ("Read", {"file_path": s[1]}),
                    "edit": lambda s: ("Edit", {"file_path": s[1], "old_string": s[2], "new_string": s[3]}),
                }[step[0]](step)
                content = [
                    {"type": "text", "text": f"Step {done + 1}: {step[0]} {step[1]}"},
                    {"type": "tool_use", "id": f"toolu_{done + 1:02d}", "name": name, "input": inp},
                ]
                stop = "tool_use"
            else:
                content = [{"type": "text", "text": final_text(stage)}]
        usage = {
            "input_tokens": USAGE["input"],
            "output_tokens": USAGE["output"],
            "cache_read_input_tokens": USAGE["cache_read"],
            "cache_creation_input_tokens": USAGE["cache_write"],
        }
        msg_id = f"msg_{int(time.time() * 1e6)}"
        model = body.get("model", "claude-sonnet-4-5")
        if not body.get("stream"):
            return self.send_json({
                "id": msg_id, "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage,
            })
        self.start_sse()
        start_usage = dict(usage, output_tokens=1)
        self.sse({"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}}, "message_start")
        for i, c in enumerate(content):
            if c["type"] == "text":
                self.sse({"type": "content_block_start", "index": i,
                          "content_block": {"type": "text", "text": ""}}, "content_block_start")
                self.sse({"type": "content_block_delta", "index": i,
                          "delta": {"type": "text_delta", "text": c["text"]}}, "content_block_delta")
            else:
                self.sse({"type": "content_block_start", "index": i, "content_block": {
                    "type": "tool_use", "id": c["id"], "name": c["name"], "input": {}}},
                    "content_block_start")
                self.sse({"type": "content_block_delta", "index": i, "delta": {
                    "type": "input_json_delta", "partial_json": json.dumps(c["input"])}},
                    "content_block_delta")
            self.sse({"type": "content_block_stop", "index": i}, "content_block_stop")
        self.sse({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                  "usage": {"output_tokens": USAGE["output"]}}, "message_delta")
        self.sse({"type": "message_stop"}, "message_stop")

    # --- OpenAI Responses (codex) ---------------------------------------------------------
    def openai_responses(self, body):
        items = body.get("input", [])
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        user_text = flatten([i.get("content") for i in items if i.get("role") == "user"])
        p = plan(user_text) if body.get("tools") else None
        done = sum(1 for i in items if i.get("type") in ("function_call", "custom_tool_call", "local_shell_call"))
        out = []
        if p is None:
            out.append(("text", "fixci scripted model"))
        else:
            stage, wt, _out, steps = p
            if done < len(steps):
                step = steps[done]
                out.append(("call", f"call_{done + 1:02d}", json.dumps({"cmd": shell_script(step), "workdir": wt})))
            else:
                out.append(("text", final_text(stage)))
        rid = f"resp_{int(time.time() * 1e6)}"
        usage = {
            "input_tokens": USAGE["input"],
            "input_tokens_details": {"cached_tokens": USAGE["cache_read"]},
            "output_tokens": USAGE["output"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": USAGE["input"] + USAGE["output"],
        }
        self.start_sse()
        self.sse({"type": "response.created", "response": {"id": rid, "status": "in_progress"}},
                 "response.created")
        for idx, o in enumerate(out):
            if o[0] == "call":
                item = {"type": "function_call", "id": f"fc_{o[1]}", "call_id": o[1],
                        "name": "exec_command", "arguments": o[2], "status": "completed"}
            else:
                item = {"type": "message", "id": f"msg_{rid}_{idx}", "role": "assistant",
                        "status": "completed", "content": [{"type": "output_text", "text": o[1],
                                                            "annotations": []}]}
            self.sse({"type": "response.output_item.done", "output_index": idx, "item": item},
                     "response.output_item.done")
        self.sse({"type": "response.completed", "response": {
            "id": rid, "status": "completed", "usage": usage}}, "response.completed")

    # --- OpenAI Chat Completions (aider; opencode, copilot, qwen with tools) -------------
    def chat(self, body):
        msgs = body.get("messages", [])
        # aider's system prompt carries example conversations: only what follows fixci's prompt
        # counts. The CLIs that send `tools` get one tool call per answer; aider (no tools) gets
        # the edits as text blocks in its edit format, all in one answer.
        start = next((i for i, m in enumerate(msgs) if m.get("role") == "user"
                      and plan(flatten(m.get("content")))), None)
        system = flatten([m.get("content") for m in msgs if m.get("role") == "system"])
        call = None
        if start is None or any(s in system for s in SIDE_AGENTS):
            text = "fixci scripted model"
        elif body.get("tools"):
            stage, _wt, _out, steps = plan(flatten(msgs[start].get("content")))
            done = sum(len(m.get("tool_calls") or []) for m in msgs[start:]
                       if m.get("role") == "assistant")
            if done < len(steps):
                call = chat_tool_call(steps[done], body["tools"], done)
                text = f"Step {done + 1}: {steps[done][0]} {steps[done][1]}"
            else:
                text = final_text(stage)
        else:
            stage, wt, _out, steps = plan(flatten(msgs[start].get("content")))
            # Every answer carries the edits: aider re-asks after adding a file the answer named
            # to the chat, and applies the edits only then.
            text = final_text(stage) + "\n\n" + "\n".join(
                edit_block(s, wt, "SEARCH/REPLACE" in system) for s in steps if s[0] != "read"
            )
        usage = {"prompt_tokens": USAGE["input"], "completion_tokens": USAGE["output"],
                 "total_tokens": USAGE["input"] + USAGE["output"]}
        if body.get("tools"):
            # As OpenAI reports a prompt-cache hit: the cached tokens are part of prompt_tokens.
            usage["prompt_tokens_details"] = {"cached_tokens": USAGE["cache_read"]}
        cid = f"chatcmpl-{int(time.time() * 1e6)}"
        model = body.get("model", "fixci-scripted")
        finish = "tool_calls" if call else "stop"
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            if call:
                message["tool_calls"] = [call]
            return self.send_json({
                "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                "usage": usage,
            })
        self.start_sse()
        chunk = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
                 "model": model}
        self.sse(dict(chunk, choices=[{"index": 0, "delta": {"role": "assistant", "content": text},
                                       "finish_reason": None}]))
        if call:
            self.sse(dict(chunk, choices=[{"index": 0, "delta": {"tool_calls": [dict(call, index=0)]},
                                           "finish_reason": None}]))
        self.sse(dict(chunk, choices=[{"index": 0, "delta": {}, "finish_reason": finish}]))
        self.sse(dict(chunk, choices=[], usage=usage))
        self.sse("[DONE]")

    # --- Gemini (gemini) ------------------------------------------------------------------
    def gemini(self, body, stream):
        contents = body.get("contents", [])
        user_text = flatten([c.get("parts") for c in contents if c.get("role", "user") == "user"])
        p = plan(user_text) if body.get("tools") else None
        done = sum(1 for c in contents if c.get("role") == "model"
                   for part in c.get("parts", []) if "functionCall" in part)
        if p is None:
            mime = (body.get("generationConfig") or {}).get("responseMimeType")
            parts = [{"text": "{}" if mime == "application/json" else "fixci scripted model"}]
        else:
            stage, _wt, _out, steps = p
            if done < len(steps):
                step = steps[done]
                name, args = {
                    "write": lambda s: ("write_file", {"file_path": s[1], "content": s[2]}),
                    "read": lambda s: ("read_file", {"file_path": s[1]}),
                    "edit": lambda s: ("replace", {"file_path": s[1], "old_string": s[2],
                                                   "new_string": s[3], "instruction": "fix",
                                                   "expected_replacements": 1}),
                }[step[0]](step)
                parts = [{"functionCall": {"name": name, "args": args}}]
            else:
                parts = [{"text": final_text(stage)}]
        answer = {
            "candidates": [{"content": {"role": "model", "parts": parts},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {
                "promptTokenCount": USAGE["input"],
                "candidatesTokenCount": USAGE["output"],
                "cachedContentTokenCount": USAGE["cache_read"],
                "totalTokenCount": USAGE["input"] + USAGE["output"],
            },
            "modelVersion": "fixci-scripted",
        }
        if not stream:
            return self.send_json(answer)
        self.start_sse()
        self.sse(answer)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--log", help="append every request body to this file (JSON Lines)")
    ap.add_argument("--verbose", action="store_true", help="log requests on stderr")
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.log = args.log
    server.verbose = args.verbose
    server.lock = threading.Lock()
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
