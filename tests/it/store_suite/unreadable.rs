//! Records that cannot be read back (here: nested past serde_json's recursion
//! limit) never take down a listing, and can still be deleted.

use super::*;

/// A JSON value nested `levels` arrays deep.
pub fn nested(levels: usize) -> serde_json::Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = json!([value]);
    }
    value
}

pub async fn an_unreadable_record_is_skipped_by_listings_and_can_still_be_deleted(store: DynStore) {
    let fine = create_chat(&store, "tenant_a", "demo").await;
    let mut chat = chat_of("demo");
    chat.metadata = json!({ "deep": nested(130) });
    let poisoned = apply(&store, transitions::create(&tenant_named("tenant_a"), chat)).await;
    assert!(store.get_chat(&poisoned.chat.id).await.is_err(), "the record does not read back");

    let all = ChatQuery { limit: 10, ..Default::default() };
    let listed = store.list_chats(&tenant_named("tenant_a"), &all).await.expect("the listing still answers");
    assert_eq!(listed.data.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [fine.chat.id.as_str()]);
    store.running_chats().await.expect("running chats still answer");

    let owner = store.chat_owner(&poisoned.chat.id).await.expect("the owner reads").expect("there");
    assert_eq!((owner.tenant.as_str(), owner.last_seq), ("tenant_a", poisoned.chat.last_seq));
    assert_eq!(store.delete_chat(&poisoned.chat.id).await.expect("deletes"), Some(poisoned.chat.last_seq));
    assert_eq!(store.chat_owner(&poisoned.chat.id).await.expect("reads"), None);

    let mut flow = flow_of("tenant_a", "deep", "Deep", at_ms(now(), 0));
    flow.definition = json!({ "deep": nested(130) });
    store.put_flow(&flow).await.expect("puts");
    store.put_flow(&flow_of("tenant_a", "ok", "Ok", at_ms(now(), 1))).await.expect("puts");
    let flows =
        store.list_flows(&tenant_named("tenant_a"), None, 10).await.expect("the listing still answers");
    assert_eq!(flows.data.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["ok"]);
    assert!(store.delete_flow(&tenant_named("tenant_a"), &flow_named("deep")).await.expect("deletes"));
}
