//! The key layout of the Redis store, in one place (see `docs/scale-out.md`).
//!
//! Every key of one chat carries the hash tag `{chat_…}`, so a chat, its events
//! and its messages live in one Cluster slot and one Lua script may touch them
//! all. Every index of one tenant carries the hash tag `{tenant}`. Pure string
//! building: touches nothing.

use crate::model::ChatStatus;

/// Builds every key name from the configured prefix (`fg:` by default).
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`, which holds no braces (checked by the store).
    pub fn new(prefix: &str) -> Keys {
        Keys { prefix: prefix.to_owned() }
    }

    /// The prefix every key starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `fg:{idem:T}:K`: the idempotency entry of tenant `T`'s hashed key `K`
    /// (JSON, expiring).
    pub fn idempotency(&self, tenant: &str, hashed_key: &str) -> String {
        format!("{}{{idem:{tenant}}}:{hashed_key}", self.prefix)
    }

    /// `fg:{usage:T}`: bytes of message text tenant `T` keeps (its quota).
    pub fn usage(&self, tenant: &str) -> String {
        format!("{}{{usage:{tenant}}}", self.prefix)
    }

    /// `fg:{chat_X}:chat`: a hash of `record` (the ChatRecord JSON), `seq`,
    /// `tenant`, `status` and `flow`.
    pub fn chat(&self, chat_id: &str) -> String {
        format!("{}{{{chat_id}}}:chat", self.prefix)
    }

    /// `fg:{chat_X}:events`: a sorted set of event JSON scored by seq.
    pub fn events(&self, chat_id: &str) -> String {
        format!("{}{{{chat_id}}}:events", self.prefix)
    }

    /// `fg:{chat_X}:messages`: a sorted set of message JSON scored by seq.
    pub fn messages(&self, chat_id: &str) -> String {
        format!("{}{{{chat_id}}}:messages", self.prefix)
    }

    /// `fg:{chat_X}:final`: the messages of the final view (user, human input,
    /// final answers), scored by seq.
    pub fn final_messages(&self, chat_id: &str) -> String {
        format!("{}{{{chat_id}}}:final", self.prefix)
    }

    /// The chat id in a chat hash's key name.
    pub fn chat_id_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.prefix.as_str())?.strip_prefix('{')?.strip_suffix("}:chat")
    }

    /// The glob matching every chat hash (for [`super::RedisStore::reindex`]).
    pub fn chat_pattern(&self) -> String {
        format!("{}{{chat_*}}:chat", glob_escape(&self.prefix))
    }

    /// `fg:tenant:{T}:chats`: every chat id of a tenant (score 0, by lex = by
    /// creation). With `status` and/or `flow`, the filtered index:
    /// `…:chats:status:<S>`, `…:chats:flow:<F>`, `…:chats:status:<S>:flow:<F>`.
    pub fn chat_index(&self, tenant: &str, status: Option<ChatStatus>, flow: Option<&str>) -> String {
        let mut key = self.chats_base(tenant);
        if let Some(status) = status {
            key.push_str(":status:");
            key.push_str(status.as_str());
        }
        if let Some(flow) = flow {
            key.push_str(":flow:");
            key.push_str(flow);
        }
        key
    }

    /// `fg:tenant:{T}:chats`, the base the index script extends.
    pub fn chats_base(&self, tenant: &str) -> String {
        format!("{}tenant:{{{tenant}}}:chats", self.prefix)
    }

    /// `fg:tenant:{T}:chats:idx`: chat id → `[seq, status, flow]` last indexed.
    pub fn chat_indexed(&self, tenant: &str) -> String {
        format!("{}tenant:{{{tenant}}}:chats:idx", self.prefix)
    }

    /// `fg:tenants`: every tenant that ever had a chat (for `running_chats`).
    pub fn tenants(&self) -> String {
        format!("{}tenants", self.prefix)
    }

    /// `fg:tenant:{T}:flows`: flow ids scored by `created_at` (ms).
    pub fn flow_order(&self, tenant: &str) -> String {
        format!("{}tenant:{{{tenant}}}:flows", self.prefix)
    }

    /// `fg:tenant:{T}:flows:defs`: flow id → FlowRecord JSON.
    pub fn flow_defs(&self, tenant: &str) -> String {
        format!("{}tenant:{{{tenant}}}:flows:defs", self.prefix)
    }

    /// `fg:key:{key_X}`: a hash of `json` (the ApiKey), `tenant`, `hash` and
    /// `used` (the JSON timestamp of the last use, once touched).
    pub fn key(&self, key_id: &str) -> String {
        format!("{}key:{{{key_id}}}", self.prefix)
    }

    /// `fg:key:hash:<sha>` → key id.
    pub fn key_hash(&self, secret_hash: &str) -> String {
        format!("{}key:hash:{secret_hash}", self.prefix)
    }

    /// `fg:tenant:{T}:keys`: a tenant's key ids (score 0, by lex = by creation).
    pub fn tenant_keys(&self, tenant: &str) -> String {
        format!("{}tenant:{{{tenant}}}:keys", self.prefix)
    }
}

/// Escapes the glob metacharacters of a literal (`*`, `?`, `[`, `]`, `\`).
fn glob_escape(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chats_keys_share_one_hash_tag_and_a_tenants_indexes_another() {
        let keys = Keys::new("fg:");
        assert_eq!(keys.chat("chat_X"), "fg:{chat_X}:chat");
        assert_eq!(keys.events("chat_X"), "fg:{chat_X}:events");
        assert_eq!(
            keys.chat_index("t1", Some(ChatStatus::Running), Some("demo")),
            "fg:tenant:{t1}:chats:status:running:flow:demo"
        );
        assert_eq!(keys.chat_index("t1", None, None), keys.chats_base("t1"));
        assert_eq!(keys.chat_id_of("fg:{chat_X}:chat"), Some("chat_X"));
        assert_eq!(Keys::new("a*b:").chat_pattern(), "a\\*b:{chat_*}:chat");
    }
}
