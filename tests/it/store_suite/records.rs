//! Behaviours of flows, API keys and the health check.

use super::*;

pub async fn flows_are_scoped_by_tenant_and_put_replaces(store: DynStore) {
    let at = at_ms(now(), 0);
    let flow = flow_of("tenant_a", "demo", "Demo", at);
    store.put_flow(&flow).await.expect("puts");
    let got =
        store.get_flow(&tenant_named("tenant_a"), &flow_named("demo")).await.expect("reads").expect("there");
    assert_eq!(got, flow);

    assert_eq!(store.get_flow(&tenant_named("tenant_b"), &flow_named("demo")).await.expect("reads"), None);
    assert!(store.list_flows(&tenant_named("tenant_b"), None, 10).await.expect("lists").data.is_empty());
    assert!(!store.delete_flow(&tenant_named("tenant_b"), &flow_named("demo")).await.expect("deletes"));
    assert!(store.get_flow(&tenant_named("tenant_a"), &flow_named("demo")).await.expect("reads").is_some());

    let theirs = flow_of("tenant_b", "demo", "Their demo", at);
    store.put_flow(&theirs).await.expect("puts");
    let renamed = flow_of("tenant_a", "demo", "Renamed", at_ms(at, 5));
    store.put_flow(&renamed).await.expect("puts");
    let got = store.get_flow(&tenant_named("tenant_a"), &flow_named("demo")).await.expect("reads");
    assert_eq!(got, Some(renamed));
    let listed = store.list_flows(&tenant_named("tenant_a"), None, 10).await.expect("lists");
    assert_eq!(listed.data.len(), 1);
    assert_eq!(
        store.get_flow(&tenant_named("tenant_b"), &flow_named("demo")).await.expect("reads"),
        Some(theirs)
    );

    assert!(store.delete_flow(&tenant_named("tenant_a"), &flow_named("demo")).await.expect("deletes"));
    assert_eq!(store.get_flow(&tenant_named("tenant_a"), &flow_named("demo")).await.expect("reads"), None);
    assert!(store.get_flow(&tenant_named("tenant_b"), &flow_named("demo")).await.expect("reads").is_some());
}

pub async fn flows_list_newest_first_with_an_after_cursor(store: DynStore) {
    let base = at_ms(now(), 0);
    let flows: Vec<FlowRecord> = (0..5)
        .map(|i| flow_of("tenant_a", FlowId::new().as_str(), &format!("f{i}"), at_ms(base, i * 10)))
        .collect();
    for flow in &flows {
        store.put_flow(flow).await.expect("puts");
    }
    store.put_flow(&flow_of("tenant_b", "other", "x", base)).await.expect("puts");
    let newest: Vec<&FlowRecord> = flows.iter().rev().collect();

    let p1 = store.list_flows(&tenant_named("tenant_a"), None, 2).await.expect("lists");
    assert_eq!(p1.data.iter().collect::<Vec<_>>(), newest[0..2]);
    assert!(p1.has_more);
    assert_eq!(p1.next_cursor.as_deref(), Some(newest[1].id.as_str()));
    let p2 = store
        .list_flows(&tenant_named("tenant_a"), p1.next_cursor.as_deref().map(flow_named).as_ref(), 2)
        .await
        .expect("lists");
    assert_eq!(p2.data.iter().collect::<Vec<_>>(), newest[2..4]);
    let p3 = store
        .list_flows(&tenant_named("tenant_a"), p2.next_cursor.as_deref().map(flow_named).as_ref(), 2)
        .await
        .expect("lists");
    assert_eq!(p3.data.iter().collect::<Vec<_>>(), newest[4..5]);
    assert!(!p3.has_more && p3.next_cursor.is_none());
}

pub async fn keys_are_found_by_hash_listed_per_tenant_and_touched(store: DynStore) {
    let (k1, k2, k3) = (key_of("tenant_a", "one"), key_of("tenant_a", "two"), key_of("tenant_b", "three"));
    store.insert_key(&k1, "hash1").await.expect("inserts");
    store.insert_key(&k2, "hash2").await.expect("inserts");
    store.insert_key(&k3, "hash3").await.expect("inserts");

    assert_eq!(store.key_by_hash("hash1").await.expect("reads"), Some(k1.clone()));
    assert_eq!(store.key_by_hash("hash3").await.expect("reads"), Some(k3.clone()));
    assert_eq!(store.key_by_hash("nope").await.expect("reads"), None);

    let mut mine = vec![k1.clone(), k2.clone()];
    mine.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(store.list_keys(&tenant_named("tenant_a")).await.expect("lists"), mine);
    assert_eq!(store.list_keys(&tenant_named("tenant_b")).await.expect("lists"), vec![k3]);
    assert!(store.list_keys(&tenant_named("tenant_c")).await.expect("lists").is_empty());

    let used = at_ms(now(), 0);
    store.touch_key(&k1.id, used).await.expect("touches");
    let got = store.key_by_hash("hash1").await.expect("reads").expect("there");
    assert_eq!(got.last_used_at, Some(used));
    assert_eq!(ApiKey { last_used_at: None, ..got }, k1);
    store.touch_key(&KeyId::new(), used).await.expect("touching a missing key is fine");
}

pub async fn a_key_is_deleted_only_by_its_own_tenant(store: DynStore) {
    let key = key_of("tenant_a", "one");
    store.insert_key(&key, "hash1").await.expect("inserts");
    assert!(!store.delete_key(&tenant_named("tenant_b"), &key.id).await.expect("deletes"));
    assert_eq!(store.key_by_hash("hash1").await.expect("reads"), Some(key.clone()));
    assert!(store.delete_key(&tenant_named("tenant_a"), &key.id).await.expect("deletes"));
    assert_eq!(store.key_by_hash("hash1").await.expect("reads"), None);
    assert!(store.list_keys(&tenant_named("tenant_a")).await.expect("lists").is_empty());
    assert!(!store.delete_key(&tenant_named("tenant_a"), &key.id).await.expect("deletes"));
}

pub async fn a_fresh_store_answers_ping(store: DynStore) {
    store.ping().await.expect("pings");
}

pub async fn idempotency_keys_are_reserved_answered_and_released_per_tenant(store: DynStore) {
    use flowgate::store::{Idempotency, StoredAnswer};
    use std::time::Duration;
    let (a, b) = (tenant_named("tenant_a"), tenant_named("tenant_b"));
    let hold = Duration::from_secs(30);
    assert_eq!(store.idempotency_begin(&a, "k1", "fp", hold).await.expect("begins"), Idempotency::Fresh);
    let again = store.idempotency_begin(&a, "k1", "fp", hold).await.expect("begins");
    assert_eq!(again, Idempotency::InProgress { fingerprint: "fp".into() });
    assert_eq!(store.idempotency_begin(&b, "k1", "fp", hold).await.expect("begins"), Idempotency::Fresh);
    let answer = StoredAnswer { status: 201, body: json!({"id": "x"}) };
    store.idempotency_finish(&a, "k1", "fp", &answer, Duration::from_secs(60)).await.expect("finishes");
    let done = store.idempotency_begin(&a, "k1", "other", hold).await.expect("begins");
    assert_eq!(done, Idempotency::Answered { fingerprint: "fp".into(), answer });
    store.idempotency_release(&b, "k1").await.expect("releases");
    assert_eq!(store.idempotency_begin(&b, "k1", "fp2", hold).await.expect("begins"), Idempotency::Fresh);
    let short = Duration::from_millis(1);
    store
        .idempotency_finish(&b, "k2", "fp", &StoredAnswer { status: 200, body: json!({}) }, short)
        .await
        .ok();
    assert_eq!(store.idempotency_begin(&b, "k3", "fp", short).await.expect("begins"), Idempotency::Fresh);
    let expired = async {
        loop {
            if store.idempotency_begin(&b, "k3", "fp", hold).await.expect("begins") == Idempotency::Fresh {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), expired)
        .await
        .expect("an expired reservation is fresh again");
}

pub async fn stored_message_bytes_are_counted_per_tenant_and_given_back_with_their_chat(store: DynStore) {
    let (a, b) = (tenant_named("tenant_a"), tenant_named("tenant_b"));
    assert_eq!(store.stored_bytes(&a).await.expect("reads"), 0);
    let chat = create_chat(&store, "tenant_a", "flow_a").await;
    let chat = post_and_cancel(&store, &chat, "hello").await;
    let other = create_chat(&store, "tenant_b", "flow_a").await;
    post_and_cancel(&store, &other, "a longer message").await;
    assert_eq!(store.stored_bytes(&a).await.expect("reads"), "hello".len() as u64);
    assert_eq!(store.stored_bytes(&b).await.expect("reads"), "a longer message".len() as u64);
    store.delete_chat(&chat.chat.id).await.expect("deletes");
    assert_eq!(store.stored_bytes(&a).await.expect("reads"), 0);
}
