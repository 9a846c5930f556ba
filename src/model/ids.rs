//! Opaque, prefixed, time-sortable ids (`chat_01JD…`).

use ulid::Ulid;

/// The kinds of id Flowgate mints; each has its own prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// `chat_`
    Chat,
    /// `msg_`
    Message,
    /// `flow_`
    Flow,
    /// `key_`
    Key,
    /// `run_`
    Run,
    /// `inp_`
    Input,
}

impl IdKind {
    fn prefix(self) -> &'static str {
        match self {
            IdKind::Chat => "chat_",
            IdKind::Message => "msg_",
            IdKind::Flow => "flow_",
            IdKind::Key => "key_",
            IdKind::Run => "run_",
            IdKind::Input => "inp_",
        }
    }
}

/// A new id of the given kind: prefix plus a ULID, so ids sort by creation time.
pub fn new_id(kind: IdKind) -> String {
    format!("{}{}", kind.prefix(), Ulid::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_sort_by_time() {
        let a = new_id(IdKind::Chat);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id(IdKind::Chat);
        assert!(a.starts_with("chat_") && a.len() == 31);
        assert!(a < b);
    }
}
