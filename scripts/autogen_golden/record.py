#!/usr/bin/env python3
"""Record AutoGen 0.2.35 conversations against a deterministic fake model.

Run by hand, never by CI (see README.md next to this file):

    python record.py            # every scenario
    python record.py NAME ...   # only these (file names without .json)
    python record.py -v NAME    # also echo AutoGen's console output

Each scenario is tests/fixtures/autogen_golden/scenarios/NAME.json; its
recording is written to tests/fixtures/autogen_golden/recorded/NAME.json.

Nothing here calls a real model: every agent with a model gets its own
FakeModelClient (AutoGen's custom model client mechanism: a config_list entry
with "model_client_cls", then agent.register_model_client), which answers
from the scenario's scripted replies for that agent and records every request.
Human input and manual speaker selection are scripted too.
"""

import argparse
import json
import logging
import os
import random
import re
import sys
import tempfile
from pathlib import Path
import warnings
from types import SimpleNamespace

warnings.filterwarnings("ignore", message="flaml.automl is not available")
import autogen  # noqa: E402
from autogen import AssistantAgent, GroupChat, GroupChatManager, UserProxyAgent  # noqa: E402
from autogen.agentchat.conversable_agent import ConversableAgent  # noqa: E402
from autogen.code_utils import content_str  # noqa: E402
from autogen.io.base import IOStream  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "autogen_golden"
SCENARIOS = FIXTURES / "scenarios"
RECORDED = FIXTURES / "recorded"

SELECTOR = "__selector__"
FAKE_CLIENT = "FakeModelClient"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
logging.getLogger("autogen.oai.client").setLevel(logging.WARNING)  # "Detected custom model client" noise


class ScriptExhausted(RuntimeError):
    """A scripted list (replies, human inputs, selector inputs) ran out."""


class Script:
    """An ordered list of scripted answers, consumed one by one."""

    def __init__(self, what, items):
        self.what = what
        self.items = list(items)
        self.used = 0

    def next(self):
        if self.used >= len(self.items):
            raise ScriptExhausted(f"{self.what}: all {len(self.items)} scripted answers used")
        item = self.items[self.used]
        self.used += 1
        return item


class Recorder:
    """Everything observed during one scenario, in order."""

    def __init__(self):
        self.run = 0
        self.sends = []  # agent -> agent sends, from process_message_before_send
        self.model_requests = []
        self.human_asks = []
        self.selector_asks = []
        self.reply_checks = []  # check_termination_and_human_reply outcomes
        self.stop_events = []  # a reply check that returned (True, None)
        self.speaker_selections = []
        self.console = []
        self.pending_model_reply = {}  # agent name -> reply text not yet sent


# --------------------------------------------------------------------------
# The fake model
# --------------------------------------------------------------------------


class FakeModelClient:
    """AutoGen 0.2 ModelClient: scripted replies per agent, every request recorded.

    One instance per agent (and one per speaker-selection agent, all sharing the
    "__selector__" script), so the calling agent is known without reading prompts.
    """

    def __init__(self, config, agent_name, script, recorder):
        self.config = config
        self.agent_name = agent_name
        self.script = script
        self.recorder = recorder

    def create(self, params):
        request = [normalize_request_message(m) for m in params["messages"]]
        entry = {"run": self.recorder.run, "agent": self.agent_name, "call": self.script.used, "messages": request}
        self.recorder.model_requests.append(entry)
        text = self.script.next()
        entry["reply"] = text
        self.recorder.pending_model_reply[self.agent_name] = text
        message = SimpleNamespace(content=text, function_call=None, tool_calls=None)
        return SimpleNamespace(choices=[SimpleNamespace(message=message)], model="fake", cost=0.0)

    def message_retrieval(self, response):
        return [choice.message.content for choice in response.choices]

    def cost(self, response):
        return 0.0

    @staticmethod
    def get_usage(response):
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost": 0.0, "model": "fake"}


def normalize_request_message(message):
    """role, content, name (if any), then any other key AutoGen put there."""
    out = {"role": message.get("role"), "content": message.get("content")}
    if "name" in message:
        out["name"] = message["name"]
    for key, value in message.items():
        if key not in out:
            out[key] = value
    return out


def fake_llm_config():
    # cache_seed None: AutoGen's default disk cache (seed 41) would replay old
    # answers for identical prompts and skip the fake client.
    return {"config_list": [{"model": "fake", "model_client_cls": FAKE_CLIENT, "cache_seed": None}], "cache_seed": None}


# --------------------------------------------------------------------------
# Console and manual speaker selection
# --------------------------------------------------------------------------


class CaptureIO:
    """AutoGen IOStream: prints are kept (ANSI colours removed); input() is only
    reached by GroupChat.manual_select_speaker (human input is patched per agent)."""

    def __init__(self, recorder, selector_inputs, echo):
        self.recorder = recorder
        self.selector_inputs = selector_inputs
        self.echo = echo
        self.buffer = ""

    def print(self, *objects, sep=" ", end="\n", flush=False):
        text = ANSI.sub("", sep.join(str(o) for o in objects) + end)
        self.buffer += text
        if self.echo:
            sys.stdout.write(text)

    def input(self, prompt="", *, password=False):
        answer = self.selector_inputs.next()
        self.recorder.selector_asks.append({"run": self.recorder.run, "prompt": prompt, "answer": answer})
        self.print(prompt + answer)
        return answer

    def lines(self):
        return self.buffer.split("\n")


# --------------------------------------------------------------------------
# Agents
# --------------------------------------------------------------------------


def termination_rule(rule):
    """A declarative rule -> the is_termination_msg callable (None = AutoGen's default)."""
    if rule is None or rule.get("default"):
        return None  # AutoGen: content_str(content) == "TERMINATE", exact
    if rule.get("none"):
        return lambda x: False
    if "endswith" in rule:  # FlowGen editor's lambda, verbatim semantics
        word = rule["endswith"]
        return lambda x: x.get("content", "").rstrip().endswith(word)
    if "equals" in rule:
        word = rule["equals"]
        return lambda x: content_str(x.get("content")) == word
    if "contains" in rule:
        word = rule["contains"]
        return lambda x: word in content_str(x.get("content"))
    raise ValueError(f"unknown termination rule {rule!r}")


def agent_kwargs(spec):
    """Constructor kwargs shared by both kinds; absent keys keep AutoGen defaults."""
    kwargs = {"name": spec["name"], "is_termination_msg": termination_rule(spec.get("is_termination_msg"))}
    for key in ("system_message", "description", "human_input_mode", "max_consecutive_auto_reply", "default_auto_reply"):
        if spec.get(key) is not None:
            kwargs[key] = spec[key]
    return kwargs


def build_agent(spec, scripts, recorder):
    kwargs = agent_kwargs(spec)
    has_model = spec["kind"] == "assistant" or spec.get("model", False)
    llm_config = fake_llm_config() if has_model else False
    if spec["kind"] == "user_proxy":
        agent = UserProxyAgent(code_execution_config=False, llm_config=llm_config, **kwargs)
    elif spec["kind"] == "assistant":
        agent = AssistantAgent(llm_config=llm_config, **kwargs)
    else:
        raise ValueError(f"unknown agent kind {spec['kind']!r}")
    if has_model:
        script = scripts.setdefault(spec["name"], Script(f"replies[{spec['name']}]", []))
        agent.register_model_client(FakeModelClient, agent_name=spec["name"], script=script, recorder=recorder)
    install_send_probe(agent, recorder)
    install_reply_check_probe(agent, recorder)
    install_receive_probe(agent, recorder)
    return agent


def install_human_input(agent, answers, recorder):
    """AutoGen's hook for the human: get_human_input(prompt) -> str."""

    def get_human_input(prompt):
        answer = answers.next()
        recorder.human_asks.append({"run": recorder.run, "agent": agent.name, "prompt": prompt, "answer": answer})
        agent._human_input.append(answer)  # as the original method does
        return answer

    agent.get_human_input = get_human_input


def install_send_probe(agent, recorder):
    """Records every message the agent sends, in true send order."""

    def before_send(sender, message, recipient, silent):
        if isinstance(message, dict):
            content = content_str(message.get("content"))
            human = message.get("role") == "user" and "name" not in message
        else:
            content, human = content_str(message), False
        if human:
            origin = "human"
        elif recorder.pending_model_reply.get(sender.name) == content:
            origin = "model"
        else:
            origin = "auto_reply"
        recorder.pending_model_reply.pop(sender.name, None)
        recorder.sends.append(
            {"run": recorder.run, "sender": sender.name, "receiver": recipient.name, "content": content, "origin": origin}
        )
        return message

    agent.register_hook("process_message_before_send", before_send)


def install_reply_check_probe(agent, recorder):
    """Wraps the agent's check_termination_and_human_reply reply function to
    record its counter, its outcome and, when it ends the chat, why."""
    original = ConversableAgent.check_termination_and_human_reply
    for entry in agent._reply_func_list:
        if entry["reply_func"] is original:
            entry["reply_func"] = _checked(original, recorder)
            return
    raise RuntimeError(f"{agent.name}: check_termination_and_human_reply not registered")


def _checked(original, recorder):
    def probe(self, messages=None, sender=None, config=None):
        last = (messages or self._oai_messages[sender])[-1]
        before = {
            "counter": self._consecutive_auto_reply_counter[sender],
            "limit": self._max_consecutive_auto_reply_dict[sender],
            "is_termination_msg": bool(self._is_termination_msg(last)),
        }
        asks = len(recorder.human_asks)
        final, reply = original(self, messages=messages, sender=sender, config=config)
        asked = recorder.human_asks[asks:]
        outcome = "stop" if final and reply is None else ("human_reply" if final else "auto_reply")
        check = {"run": recorder.run, "agent": self.name, "sender": sender.name if sender else None,
                 "last_message": content_str(last.get("content")), "human_input_mode": self.human_input_mode,
                 "counter_before": before["counter"], "limit": before["limit"],
                 "is_termination_msg": before["is_termination_msg"], "asked_human": bool(asked),
                 "outcome": outcome, "counter_after": self._consecutive_auto_reply_counter[sender]}
        recorder.reply_checks.append(check)
        if outcome == "stop":
            reason = stop_reason_of(self.human_input_mode, before, asked)
            recorder.stop_events.append({"run": recorder.run, "agent": self.name, "reason": reason})
        return final, reply

    return probe


def stop_reason_of(mode, before, asked):
    """Why check_termination_and_human_reply returned (True, None), from the branch taken."""
    if asked and asked[-1]["answer"] == "exit":
        return "human_exit"
    if asked:
        return "empty_human_answer_to_termination_msg"
    if mode != "ALWAYS" and before["counter"] >= before["limit"]:
        return "max_consecutive_auto_reply"
    if before["is_termination_msg"]:
        return "termination_msg"
    return "unknown"


def resolved_agent(agent):
    """The parameters as AutoGen resolved them (defaults filled in)."""
    return {
        "name": agent.name,
        "class": type(agent).__name__,
        "system_message": agent.system_message,
        "description": agent.description,
        "human_input_mode": agent.human_input_mode,
        "max_consecutive_auto_reply": agent.max_consecutive_auto_reply(),
        "default_auto_reply": agent._default_auto_reply,
        "has_model": agent.client is not None,
    }


# --------------------------------------------------------------------------
# Group chat
# --------------------------------------------------------------------------


class SelectorClientRegistration:
    """GroupChat._auto_select_speaker builds a fresh "speaker_selection_agent"
    with the manager's llm_config for every selection; 0.2.35 has no parameter
    to give it a custom model client, so while a scenario runs, agents of that
    name get a FakeModelClient on the shared "__selector__" script right after
    construction. Nothing else about the agent changes."""

    def __init__(self, script, recorder):
        self.script = script
        self.recorder = recorder
        self.original = ConversableAgent.__init__

    def __enter__(self):
        original, script, recorder = self.original, self.script, self.recorder

        def init(agent, name, *args, **kwargs):
            original(agent, name, *args, **kwargs)
            if name == "speaker_selection_agent" and agent.llm_config:
                agent.register_model_client(FakeModelClient, agent_name=SELECTOR, script=script, recorder=recorder)

        ConversableAgent.__init__ = init
        return self

    def __exit__(self, *exc):
        ConversableAgent.__init__ = self.original
        return False


def build_group(chat, agents, recorder):
    members = [agents[name] for name in chat["members"]]
    params = {"agents": members, "messages": [], "max_round": chat.get("max_round", 10),
              "speaker_selection_method": chat.get("speaker_selection_method", "auto")}
    if "allow_repeat_speaker" in chat:
        params["allow_repeat_speaker"] = chat["allow_repeat_speaker"]
    groupchat = GroupChat(**params)
    manager_spec = chat.get("manager", {})
    auto = params["speaker_selection_method"] == "auto"
    manager = GroupChatManager(
        groupchat,
        name=manager_spec.get("name", "chat_manager"),
        is_termination_msg=termination_rule(manager_spec.get("is_termination_msg")),
        llm_config=fake_llm_config() if auto else False,
    )
    # register_reply keeps a shallow copy of the GroupChat: that copy is the one run_chat uses.
    groupchat = next(e["config"] for e in manager._reply_func_list if e["reply_func"] is GroupChatManager.run_chat)
    install_receive_probe(manager, recorder)
    install_selection_probe(groupchat, recorder)
    return groupchat, manager


def install_selection_probe(groupchat, recorder):
    """Records who was picked after whom, and auto selection's inner result."""
    select, process = groupchat.select_speaker, groupchat._process_speaker_selection_result

    def select_speaker(last_speaker, selector):
        entry = {"run": recorder.run, "after": last_speaker.name, "method": groupchat.speaker_selection_method}
        recorder.speaker_selections.append(entry)
        speaker = select(last_speaker, selector)
        entry["selected"] = speaker.name
        return speaker

    def process_result(result, last_speaker, agents):
        recorder.speaker_selections[-1]["auto_result"] = result.chat_history[-1]["content"]
        return process(result, last_speaker, agents)

    groupchat.select_speaker = select_speaker
    groupchat._process_speaker_selection_result = process_result


# --------------------------------------------------------------------------
# Running a scenario
# --------------------------------------------------------------------------


def build_world(scenario, recorder):
    """Agents, scripts and (for groups) the group chat and its manager."""
    scripts = {name: Script(f"replies[{name}]", replies) for name, replies in scenario.get("replies", {}).items()}
    agents = {}
    for spec in scenario["agents"]:
        agents[spec["name"]] = build_agent(spec, scripts, recorder)
    humans = Script("human_inputs", scenario.get("human_inputs", []))
    for agent in agents.values():
        install_human_input(agent, humans, recorder)
    world = SimpleNamespace(agents=agents, scripts=scripts, humans=humans, groupchat=None, manager=None)
    if scenario["chat"]["kind"] == "group":
        world.groupchat, world.manager = build_group(scenario["chat"], agents, recorder)
    world.selector = scripts.setdefault(SELECTOR, Script(f"replies[{SELECTOR}]", []))
    world.selector_inputs = Script("selector_inputs", scenario.get("selector_inputs", []))
    return world


def run_all(scenario, world, recorder):
    """Every run of the scenario, in order; returns one record per run."""
    runs = []
    for index, run in enumerate(scenario["runs"]):
        recorder.run = index
        sender = world.agents[run["sender"]]
        recipient = world.manager if world.manager and run["recipient"] == world.manager.name else world.agents[run["recipient"]]
        group_before = len(world.groupchat.messages) if world.groupchat else 0
        record = {"index": index, "sender": sender.name, "recipient": recipient.name,
                  "message": run["message"], "clear_history": run.get("clear_history", True)}
        try:
            sender.initiate_chat(recipient, message=run["message"], clear_history=record["clear_history"])
        except Exception as err:  # recorded, not hidden: the fixture says what failed
            record["error"] = f"{type(err).__name__}: {err}"
        if world.groupchat and record["clear_history"]:
            group_before = 0
        record["group_messages_before"] = group_before
        runs.append(record)
        if "error" in record:
            break
    return runs


def install_receive_probe(agent, recorder):
    """Notes the role the receiver stored the latest recorded send with."""
    original = agent._append_oai_message

    def append(message, role, conversation_id, is_sending):
        valid = original(message, role, conversation_id, is_sending)
        last = recorder.sends[-1] if recorder.sends else None
        if valid and not is_sending and last and "role" not in last:
            if (last["sender"], last["receiver"]) == (conversation_id.name, agent.name):
                last["role"] = agent._oai_messages[conversation_id][-1]["role"]
        return valid

    agent._append_oai_message = append


def check_transcript(world, recorder, runs):
    """Marks each run's opening message and checks the recorded sends against
    what AutoGen kept (groupchat.messages for groups); returns problems found."""
    problems = []
    for run in runs:
        sends = [s for s in recorder.sends if s["run"] == run["index"]]
        if sends and sends[0]["sender"] == run["sender"]:
            sends[0]["origin"] = "opening"
        run["message_count"] = len(sends)
        if world.groupchat is not None and run is runs[-1]:
            kept = [content_str(m.get("content")) for m in world.groupchat.messages[run["group_messages_before"]:]]
            if kept != [s["content"] for s in sends]:
                problems.append(f"run {run['index']}: groupchat.messages differ from the recorded sends")
    problems += [f"send without a stored role: {s}" for s in recorder.sends if "role" not in s]
    return problems


def stop_reason(world, recorder, run):
    """What ended one run, as best determinable from what was observed."""
    if "error" in run:
        return {"reason": "error", "error": run["error"]}
    events = [e for e in recorder.stop_events if e["run"] == run["index"]]
    if events:
        # The agent whose reply check returned (True, None): no reply, chat over.
        return {"reason": events[-1]["reason"], "agent": events[-1]["agent"]}
    if world.groupchat is None:
        return {"reason": "unknown"}
    sends = [s for s in recorder.sends if s["run"] == run["index"]]
    last = {"content": sends[-1]["content"]} if sends else {"content": ""}
    if world.manager._is_termination_msg(last):
        return {"reason": "manager_termination_msg", "agent": world.manager.name}
    if len(sends) >= world.groupchat.max_round:
        return {"reason": "max_round"}
    return {"reason": "unknown"}


def auto_summary(world, recorder, runs):
    """Plain-language facts computed from the recording."""
    facts = []
    for run in runs:
        reason = run["stop_reason"]
        who = f" ({reason['agent']})" if "agent" in reason else ""
        facts.append(f"run {run['index']}: {run['message_count']} messages, stopped by {reason['reason']}{who}")
    calls = {}
    for request in recorder.model_requests:
        calls[request["agent"]] = calls.get(request["agent"], 0) + 1
    facts.append(f"model calls per agent: {json.dumps(calls, sort_keys=True)}")
    unused = {n: len(s.items) - s.used for n, s in world.scripts.items() if s.used < len(s.items)}
    if unused:
        facts.append(f"scripted replies left unused: {json.dumps(unused, sort_keys=True)}")
    exit_sent = any(m["content"] == "exit" for r in recorder.model_requests for m in r["messages"])
    if any(a["answer"] == "exit" for a in recorder.human_asks):
        facts.append("a human answered 'exit'; 'exit' " + ("WAS" if exit_sent else "was never") + " sent to a model")
    return facts


def record_scenario(name, echo=False):
    scenario = json.loads((SCENARIOS / f"{name}.json").read_text())
    recorder = Recorder()
    world = build_world(scenario, recorder)
    capture = CaptureIO(recorder, world.selector_inputs, echo)
    random.seed(scenario.get("seed", 0))
    with IOStream.set_default(capture), SelectorClientRegistration(world.selector, recorder):
        runs = run_all(scenario, world, recorder)
    problems = check_transcript(world, recorder, runs)
    for run in runs:
        run["stop_reason"] = stop_reason(world, recorder, run)
    return {
        "format": "flowgate-autogen-golden/1",
        "autogen_version": autogen.__version__,
        "scenario": name,
        "description": scenario.get("description", ""),
        "comparable": scenario.get("comparable", "exact"),
        "agents_resolved": [resolved_agent(a) for a in world.agents.values()],
        "group": group_resolved(world),
        "runs": runs,
        "messages": recorder.sends,
        "model_requests": recorder.model_requests,
        "human_asks": recorder.human_asks,
        "selector_asks": recorder.selector_asks,
        "speaker_selections": recorder.speaker_selections,
        "reply_checks": recorder.reply_checks,
        "stop_reason": runs[-1]["stop_reason"],
        "summary": auto_summary(world, recorder, runs) + problems,
        "notes": scenario.get("notes", []),
        "console": capture.lines(),
    }


def group_resolved(world):
    if world.groupchat is None:
        return None
    gc = world.groupchat
    return {
        "manager": world.manager.name,
        "members": gc.agent_names,
        "speaker_selection_method": gc.speaker_selection_method,
        "max_round": gc.max_round,
        "allow_repeat_speaker": gc.allow_repeat_speaker,
        "max_retries_for_selecting_speaker": gc.max_retries_for_selecting_speaker,
        "role_for_select_speaker_messages": gc.role_for_select_speaker_messages,
        "select_speaker_message_template": gc.select_speaker_message_template,
        "select_speaker_prompt_template": gc.select_speaker_prompt_template,
        "select_speaker_auto_multiple_template": gc.select_speaker_auto_multiple_template,
        "select_speaker_auto_none_template": gc.select_speaker_auto_none_template,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="scenario names (default: all)")
    parser.add_argument("-v", "--verbose", action="store_true", help="echo AutoGen's console output")
    args = parser.parse_args(argv)
    names = args.names or sorted(p.stem for p in SCENARIOS.glob("*.json"))
    RECORDED.mkdir(parents=True, exist_ok=True)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="autogen_golden_") as scratch:
        os.chdir(scratch)  # a stray AutoGen .cache would land here, not in the repo
        for name in names:
            failed += record_one(name, args.verbose)
    return 1 if failed else 0


def record_one(name, verbose):
    """Records one scenario; returns 1 when it ended in an error or unexplained."""
    fixture = record_scenario(name, echo=verbose)
    text = json.dumps(fixture, indent=2, ensure_ascii=False) + "\n"
    (RECORDED / f"{name}.json").write_text(text)
    print(f"{name}: {fixture['stop_reason']['reason']}, {len(fixture['messages'])} messages, "
          f"{len(fixture['model_requests'])} model requests")
    return int(fixture["stop_reason"]["reason"] in ("error", "unknown"))


if __name__ == "__main__":
    sys.exit(main())
