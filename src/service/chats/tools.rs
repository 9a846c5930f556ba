//! Answering a pending `tool_calls` request with the client's results.
//!
//! Idempotent by call id: results for calls this chat already stored answers
//! for, with the same content, change nothing and answer with the chat as it
//! is (a retried POST, a socket command resent after a reconnect); the same
//! call ids with other content are 409 `tool_call_answered`.
//!
//! Touches the ledger through the chat service.

use serde_json::Value;

use super::ChatService;
use crate::auth::Caller;
use crate::engine::prompt::RESULTS_KEY;
use crate::ledger::transitions;
use crate::model::{Chat, ChatId, ClientError, ErrorCode, Role, ToolResult};
use crate::store::{MessageView, SeqQuery};

/// How far back a repeated answer is recognised, in messages.
const LOOKBACK: usize = 200;

impl ChatService {
    /// Answers the pending input request, REST and socket alike: with tool
    /// results when given (then no text nor auto reply may be), else with
    /// `text` as [`ChatService::submit_input`] takes it.
    pub async fn answer_input(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        request_id: Option<&str>,
        text: Option<Option<&str>>,
        results: Option<&[ToolResult]>,
    ) -> Result<Chat, ClientError> {
        match results {
            None => self.submit_input(caller, chat_id, request_id, text).await,
            Some(_) if text != Some(None) => Err(ClientError::invalid(
                "tool_results",
                "send either `tool_results` or a `message` (or `auto_reply`), not both",
            )),
            Some(results) => self.submit_tool_results(caller, chat_id, request_id, results).await,
        }
    }

    /// Answers the pending tool calls and resumes the run.
    pub async fn submit_tool_results(
        &self,
        caller: &Caller,
        chat_id: &ChatId,
        request_id: Option<&str>,
        results: &[ToolResult],
    ) -> Result<Chat, ClientError> {
        self.check_results(results)?;
        let record = self.get(caller, chat_id).await?;
        self.within_stored_bytes(&record.tenant).await?;
        let refused = match self
            .update(chat_id, |cur| transitions::submit_tool_results(cur, request_id, results))
            .await
        {
            Ok(record) => {
                self.engine.start(chat_id);
                return Ok(record.chat);
            }
            Err(e) => e,
        };
        let repeatable = [
            ErrorCode::NotWaitingForInput,
            ErrorCode::InputRequestMismatch,
            ErrorCode::UnknownToolCall,
            ErrorCode::InputKindMismatch,
        ];
        if !repeatable.contains(&refused.code) {
            return Err(refused);
        }
        match self.answered_before(chat_id, results).await? {
            Some(Ok(())) => Ok(self.get(caller, chat_id).await?.chat),
            Some(Err(call_id)) => Err(ClientError::new(
                ErrorCode::ToolCallAnswered,
                format!("call `{call_id}` was already answered, with other content"),
            )
            .with("call_id", call_id)),
            None => Err(refused),
        }
    }

    /// A non-empty list of bounded results, each naming a call.
    fn check_results(&self, results: &[ToolResult]) -> Result<(), ClientError> {
        if results.is_empty() {
            return Err(ClientError::invalid("tool_results", "at least one result is required"));
        }
        let max = self.engine.run_limits().max_tool_result_bytes;
        for (i, r) in results.iter().enumerate() {
            if r.call_id.trim().is_empty() {
                return Err(ClientError::invalid(&format!("tool_results[{i}].call_id"), "must not be empty"));
            }
            if r.content.len() > max {
                let why = format!("longer than {max} bytes (runs.max_tool_result_bytes)");
                return Err(ClientError::invalid(&format!("tool_results[{i}].content"), why));
            }
        }
        Ok(())
    }

    /// Whether every result answers a call this chat already stored an answer
    /// for: `Ok` when each has the same content, `Err(call_id)` for the first
    /// that differs; `None` when some call was never answered.
    async fn answered_before(
        &self,
        chat_id: &ChatId,
        results: &[ToolResult],
    ) -> Result<Option<Result<(), String>>, ClientError> {
        let query = SeqQuery {
            after_seq: None,
            before_seq: None,
            limit: LOOKBACK,
            descending: true,
            view: MessageView::All,
        };
        let messages = self.journal.store.messages(chat_id, &query).await?;
        let stored: Vec<(&str, &str)> = messages
            .iter()
            .filter(|m| m.role == Role::HumanInput)
            .filter_map(|m| m.metadata.get(RESULTS_KEY).and_then(Value::as_array))
            .flatten()
            .filter_map(|r| Some((r.get("call_id")?.as_str()?, r.get("content")?.as_str()?)))
            .collect();
        let mut verdict = Ok(());
        for r in results {
            match stored.iter().find(|(id, _)| *id == r.call_id) {
                None => return Ok(None),
                Some((_, content)) if *content != r.content && verdict.is_ok() => {
                    verdict = Err(r.call_id.clone());
                }
                Some(_) => {}
            }
        }
        Ok(Some(verdict))
    }
}
