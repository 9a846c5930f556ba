//! The status machine as one table: every status × every client command, and
//! what each does (the new status, or the refusal the client gets).

use serde_json::json;

use super::transitions::{self, Refusal};
use crate::model::{
    Chat, ChatId, ChatRecord, ChatStatus, FlowId, InputKind, InputRequest, InputRequestId, RunId, RunInfo,
    TenantId, now,
};

/// A chat in `status`, with the run and pending request that status implies.
fn chat_in(status: ChatStatus) -> ChatRecord {
    let at = now();
    let active = matches!(status, ChatStatus::Running | ChatStatus::WaitForHumanInput);
    let pending = (status == ChatStatus::WaitForHumanInput).then(|| InputRequest {
        request_id: InputRequestId::new(),
        agent: "user".into(),
        prompt: "Your answer?".into(),
        created_at: at,
        kind: InputKind::Human,
        choices: None,
        calls: None,
    });
    let chat = Chat {
        id: ChatId::new(),
        name: "table".into(),
        from_type: "flow".into(),
        from_flow: FlowId::parse("demo").unwrap(),
        status,
        created_at: at,
        updated_at: at,
        last_seq: 4,
        metadata: json!({}),
        error: None,
        pending_input: pending,
    };
    let run = active.then(|| RunInfo { run_id: RunId::new(), state: json!(null), reply: None });
    ChatRecord { tenant: TenantId::parse("t").unwrap(), chat, run }
}

/// What a command did: the status it committed, or the refusal's name.
fn outcome(result: Result<crate::store::ChatChange, Refusal>) -> &'static str {
    match result {
        Ok(change) => change.record.chat.status.as_str(),
        Err(Refusal::ChatBusy) => "chat_busy",
        Err(Refusal::InputRequired(_)) => "input_required",
        Err(Refusal::NotWaitingForInput) => "not_waiting_for_input",
        Err(Refusal::NoActiveRun) => "no_active_run",
        Err(other) => panic!("unexpected refusal {other:?}"),
    }
}

#[test]
fn every_status_answers_every_command_as_the_contract_says() {
    use ChatStatus::*;
    // status, then: message, input (text), input (auto reply), cancel.
    let table = [
        (Ready, ["running", "not_waiting_for_input", "not_waiting_for_input", "no_active_run"]),
        (Running, ["chat_busy", "not_waiting_for_input", "not_waiting_for_input", "ready"]),
        (WaitForHumanInput, ["input_required", "running", "running", "ready"]),
        (Completed, ["running", "not_waiting_for_input", "not_waiting_for_input", "no_active_run"]),
        (Error, ["running", "not_waiting_for_input", "not_waiting_for_input", "no_active_run"]),
    ];
    for (status, expected) in table {
        let chat = chat_in(status);
        let got = [
            outcome(transitions::post_message(&chat, "hello", &[])),
            outcome(transitions::submit_input(&chat, None, Some("yes"))),
            outcome(transitions::submit_input(&chat, None, None)),
            outcome(transitions::cancel(&chat)),
        ];
        assert_eq!(got, expected, "from {}", status.as_str());
    }
}

#[test]
fn every_committed_change_moves_the_seq_on_by_its_events_without_a_gap() {
    for status in [ChatStatus::Ready, ChatStatus::WaitForHumanInput, ChatStatus::Running] {
        let chat = chat_in(status);
        let changes = [
            transitions::post_message(&chat, "hello", &[]),
            transitions::submit_input(&chat, None, Some("yes")),
            transitions::cancel(&chat),
        ];
        for change in changes.into_iter().flatten() {
            let seqs: Vec<u64> = change.events.iter().filter_map(|e| e.seq).collect();
            let expected: Vec<u64> = (5..5 + seqs.len() as u64).collect();
            assert_eq!(seqs, expected, "from {}", status.as_str());
            assert_eq!(change.record.chat.last_seq, 4 + seqs.len() as u64);
        }
    }
}

#[test]
fn a_speaker_selection_takes_a_number_a_name_q_or_nothing_and_refuses_the_rest() {
    let mut chat = chat_in(ChatStatus::WaitForHumanInput);
    let choices: Vec<String> = ["planner", "writer", "critic"].map(String::from).into();
    if let Some(pending) = chat.chat.pending_input.as_mut() {
        pending.kind = InputKind::SelectSpeaker;
        pending.choices = Some(choices.clone());
    }
    for taken in [Some("1"), Some("3"), Some(" 2 "), Some("writer"), Some("q"), Some(""), None] {
        assert_eq!(outcome(transitions::submit_input(&chat, None, taken)), "running", "{taken:?}");
    }
    for refused in ["0", "4", "-1", "Writer", "writer or critic", "qq"] {
        let result = transitions::submit_input(&chat, None, Some(refused));
        assert!(matches!(result, Err(Refusal::InvalidChoice(ref c)) if *c == choices), "{refused}");
    }
}
