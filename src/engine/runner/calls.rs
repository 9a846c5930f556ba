//! The runner's model calls: an agent's reply, streamed live as ephemeral
//! `message.delta` events under the id its message will be stored with, and
//! `auto` speaker selection (up to [`SELECTOR_ATTEMPTS`] answers, each retry
//! showing the failed answers with AutoGen's corrections, then round robin).
//!
//! Touches the model providers, the metrics (model calls), and, for deltas,
//! the bus through the journal.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::Runner;
use crate::bus::partials::Chunk;
use crate::engine::policy::{self, Context, Selection};
use crate::engine::prompt;
use crate::engine::provider::{Completion, CompletionRequest, ModelProvider, ProviderError};
use crate::flow::{AgentKind, Flow, SpeakerSelection};
use crate::metrics::ModelOutcome;

/// Selector answers asked for before falling back to round robin.
pub(super) const SELECTOR_ATTEMPTS: u32 = 3;

/// Where streamed chunks go.
struct DeltaTarget<'a> {
    message_id: &'a str,
    sender: &'a str,
}

impl Runner<'_> {
    /// `agent`'s reply from `model`, streamed as `message.delta` events.
    pub(super) async fn call_agent(
        &self,
        flow: &Flow,
        agent: &str,
        model: &str,
        message_id: &str,
    ) -> Result<Completion, ProviderError> {
        let spec = flow.agent(agent).ok_or_else(|| ProviderError::Malformed {
            model: model.to_owned(),
            message: format!("`{agent}` is not an agent of the flow"),
        })?;
        let provider = self.shared.models.resolve(flow, model)?;
        let request = prompt::agent_request(spec, &self.history);
        let target = DeltaTarget { message_id, sender: agent };
        self.stream(provider, request, Some(target)).await
    }

    /// Asks the selector model who speaks next; falls back to round robin
    /// after [`SELECTOR_ATTEMPTS`] answers that name no single candidate.
    pub(super) async fn select_auto(
        &self,
        ctx: &Context<'_>,
        candidates: &[String],
    ) -> Result<(String, Selection), ProviderError> {
        let flow = ctx.flow;
        let model = flow
            .chat
            .selector_model
            .clone()
            .or_else(|| {
                flow.agents.iter().find(|a| a.kind == AgentKind::Assistant).and_then(|a| a.model.clone())
            })
            .ok_or_else(|| ProviderError::Connect {
                model: "(selector)".into(),
                message: "the flow names no model to select speakers with".into(),
            })?;
        let provider = self.shared.models.resolve(flow, &model)?;
        let mut failures = Vec::new();
        for attempt in 0..SELECTOR_ATTEMPTS {
            let request = prompt::selector_request(flow, candidates, &self.history, &failures);
            let answer = self.stream(provider.clone(), request, None).await?;
            match prompt::pick(&answer.content, candidates) {
                Ok(agent) => {
                    let selection = Selection {
                        selected_by: SpeakerSelection::Auto,
                        attempts: Some(attempt + 1),
                        fallback: None,
                    };
                    return Ok((agent, selection));
                }
                Err(miss) => failures.push((answer.content, miss)),
            }
            tracing::debug!(chat_id = %self.chat_id, attempt, "selector named no single candidate");
        }
        let selection = Selection {
            selected_by: SpeakerSelection::Auto,
            attempts: Some(SELECTOR_ATTEMPTS),
            fallback: Some(SpeakerSelection::RoundRobin),
        };
        Ok((policy::round_robin_next(ctx), selection))
    }

    /// Runs one completion, publishing each chunk to `target` (if any) as it
    /// arrives. A reply over `runs.max_reply_bytes` is cut there and the call
    /// stopped; at the run's deadline the call stops as if cancelled. Counted
    /// in the model series (calls, latency, errors by kind, reported tokens).
    async fn stream(
        &self,
        provider: Arc<dyn ModelProvider>,
        request: CompletionRequest,
        target: Option<DeltaTarget<'_>>,
    ) -> Result<Completion, ProviderError> {
        let kind = provider.kind();
        let started = std::time::Instant::now();
        let result = self.stream_deltas(provider, request, target).await;
        let outcome = match &result {
            Ok(done) => ModelOutcome::Answered {
                prompt_tokens: usage(&done.metadata, "prompt_tokens"),
                completion_tokens: usage(&done.metadata, "completion_tokens"),
            },
            Err(e) => e.kind().map_or(ModelOutcome::Cancelled, ModelOutcome::Failed),
        };
        self.shared.journal.metrics.model_call(kind, started.elapsed().as_secs_f64(), outcome);
        result
    }

    /// [`Runner::stream`] without the counting.
    async fn stream_deltas(
        &self,
        provider: Arc<dyn ModelProvider>,
        request: CompletionRequest,
        target: Option<DeltaTarget<'_>>,
    ) -> Result<Completion, ProviderError> {
        let (tx, mut rx) = mpsc::channel::<String>(64);
        let call = provider.complete(request, tx, self.cancel.clone());
        tokio::pin!(call);
        let mut cut = self.bounds.reply_cut();
        loop {
            tokio::select! {
                biased;
                Some(delta) = rx.recv() => {
                    let offset = cut.len();
                    let (kept, over) = cut.take(delta);
                    self.publish_delta(target.as_ref(), kept, offset).await;
                    if over {
                        tracing::info!(chat_id = %self.chat_id, "reply cut at runs.max_reply_bytes");
                        return Ok(cut.cut());
                    }
                }
                result = &mut call => {
                    while let Ok(delta) = rx.try_recv() {
                        let offset = cut.len();
                        let (kept, over) = cut.take(delta);
                        self.publish_delta(target.as_ref(), kept, offset).await;
                        if over {
                            break;
                        }
                    }
                    return result.map(|done| cut.finish(done));
                }
                () = tokio::time::sleep_until(self.bounds.deadline()) => return Err(ProviderError::Cancelled),
            }
        }
    }

    /// Publishes a chunk that starts `offset` bytes into the reply (the
    /// ordering handle a feed's snapshot is matched against).
    async fn publish_delta(&self, target: Option<&DeltaTarget<'_>>, delta: String, offset: usize) {
        let Some(target) = target else { return };
        if delta.is_empty() {
            return;
        }
        let chunk = Chunk {
            chat_id: self.chat_id,
            message_id: target.message_id,
            sender: target.sender,
            offset: offset as u64,
            text: &delta,
        };
        self.shared.journal.publish_delta(&chunk).await;
    }
}

/// A count from a reply's `metadata.usage` (as OpenAI reports it), if any.
fn usage(metadata: &serde_json::Value, field: &str) -> Option<u64> {
    metadata.get("usage")?.get(field)?.as_u64()
}
