//! Behaviours of chats: commits, reads by seq, listings, deletion.

use futures::future::join_all;

use super::*;

pub async fn a_committed_chat_reads_back_equal(store: DynStore) {
    let change = transitions::create(&tenant_named("tenant_a"), chat_of("flow_a"));
    let (record, events) = (change.record.clone(), change.events.clone());
    store.commit(change).await.expect("commits");
    let got = store.get_chat(&record.chat.id).await.expect("reads");
    assert_same(&got.expect("the chat is there"), &record);
    assert_same(&all_events(&store, &record.chat.id).await, &events);

    let change = post(&record, "hello");
    let (running, messages) = (change.record.clone(), change.messages.clone());
    store.commit(change).await.expect("commits");
    let got = store.get_chat(&record.chat.id).await.expect("reads");
    assert_same(&got.expect("the chat is there"), &running);
    assert_same(&all_messages(&store, &record.chat.id).await, &messages);
    assert_eq!(store.get_chat(&ChatId::new()).await.expect("reads"), None);
}

pub async fn inserting_an_existing_chat_id_conflicts(store: DynStore) {
    let record = create_chat(&store, "tenant_a", "flow_a").await;
    let again = transitions::create(&tenant_named("tenant_b"), record.chat.clone());
    assert!(is_conflict(&store.commit(again).await));
    let got = store.get_chat(&record.chat.id).await.expect("reads");
    assert_same(&got.expect("still there"), &record);
    assert_eq!(all_events(&store, &record.chat.id).await.len(), 1);
}

pub async fn a_stale_expected_seq_conflicts_and_leaves_the_chat_unchanged(store: DynStore) {
    let record = create_chat(&store, "tenant_a", "flow_a").await;
    let (winner, loser) = (post(&record, "first"), post(&record, "second"));
    let after = apply(&store, winner.clone()).await;
    assert!(is_conflict(&store.commit(loser).await));

    let got = store.get_chat(&record.chat.id).await.expect("reads");
    assert_same(&got.expect("the chat is there"), &after);
    let messages = all_messages(&store, &record.chat.id).await;
    assert_same(&messages, &winner.messages);
    let events = all_events(&store, &record.chat.id).await;
    assert_eq!(events.len() as u64, after.chat.last_seq);
    assert_same(&events[1..].to_vec(), &winner.events);
}

pub async fn a_change_to_a_missing_chat_is_chat_not_found(store: DynStore) {
    let never = transitions::create(&tenant_named("tenant_a"), chat_of("flow_a")).record;
    let result = store.commit(post(&never, "hello")).await;
    assert!(matches!(result, Err(StoreError::ChatNotFound)), "{result:?}");

    let record = create_chat(&store, "tenant_a", "flow_a").await;
    assert_eq!(store.delete_chat(&record.chat.id).await.expect("deletes"), Some(record.chat.last_seq));
    let result = store.commit(post(&record, "hello")).await;
    assert!(matches!(result, Err(StoreError::ChatNotFound)), "{result:?}");
    assert!(all_events(&store, &record.chat.id).await.is_empty());
}

pub async fn twenty_concurrent_changes_from_the_same_seq_commit_exactly_one(store: DynStore) {
    let record = create_chat(&store, "tenant_a", "flow_a").await;
    let changes: Vec<ChatChange> = (0..20).map(|i| post(&record, &format!("m{i}"))).collect();
    let tasks = changes.iter().cloned().map(|change| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.commit(change).await })
    });
    let results: Vec<_> =
        join_all(tasks).await.into_iter().map(|joined| joined.expect("the task ran")).collect();
    let winners: Vec<usize> = (0..20).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| is_conflict(r)).count(), 19);

    let winner = &changes[winners[0]];
    let got = store.get_chat(&record.chat.id).await.expect("reads");
    assert_same(&got.expect("the chat is there"), &winner.record);
    assert_same(&all_messages(&store, &record.chat.id).await, &winner.messages);
    assert_eq!(all_events(&store, &record.chat.id).await.len() as u64, winner.record.chat.last_seq);
}

pub async fn events_and_messages_read_back_in_seq_order_by_cursor(store: DynStore) {
    let mut record = create_chat(&store, "tenant_a", "flow_a").await;
    for i in 0..5 {
        record = post_and_cancel(&store, &record, &format!("m{i}")).await;
    }
    let id = record.chat.id.clone();
    let events = all_events(&store, &id).await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq.expect("durable")).collect();
    assert_eq!(seqs, (1..=record.chat.last_seq).collect::<Vec<_>>());
    let messages = all_messages(&store, &id).await;
    assert_eq!(messages.len(), 5);
    assert!(messages.windows(2).all(|w| w[0].seq < w[1].seq));

    let q = |after_seq, before_seq, limit, descending| SeqQuery {
        after_seq,
        before_seq,
        limit,
        descending,
        ..SeqQuery::default()
    };
    let seqs_of = |events: Vec<Event>| events.iter().map(|e| e.seq.expect("durable")).collect::<Vec<_>>();
    let got = store.events(&id, &q(Some(10), None, 5, false)).await.expect("reads");
    assert_eq!(seqs_of(got), vec![11, 12, 13, 14, 15]);
    let got = store.events(&id, &q(Some(20), Some(24), 100, false)).await.expect("reads");
    assert_eq!(seqs_of(got), vec![21, 22, 23]);
    let got = store.events(&id, &q(None, None, 3, true)).await.expect("reads");
    assert_eq!(seqs_of(got), vec![26, 25, 24]);
    let got = store.events(&id, &q(None, Some(5), 2, true)).await.expect("reads");
    assert_eq!(seqs_of(got), vec![4, 3]);
    let got = store.events(&id, &q(Some(26), None, 10, false)).await.expect("reads");
    assert!(got.is_empty());

    let message_seqs = |m: Vec<Message>| m.iter().map(|m| m.seq).collect::<Vec<_>>();
    let all: Vec<u64> = message_seqs(messages);
    let got = store.messages(&id, &q(Some(all[1]), None, 2, false)).await.expect("reads");
    assert_eq!(message_seqs(got), all[2..4].to_vec());
    let got = store.messages(&id, &q(None, Some(all[4]), 10, true)).await.expect("reads");
    assert_eq!(message_seqs(got), vec![all[3], all[2], all[1], all[0]]);
    let got = store.messages(&ChatId::new(), &q(None, None, 10, false)).await.expect("reads");
    assert!(got.is_empty());
}

pub async fn the_final_view_keeps_user_human_input_and_final_messages_by_cursor(store: DynStore) {
    let mut record = apply(&store, post(&create_chat(&store, "tenant_a", "flow_a").await, "q")).await;
    let run_id = record.run.as_ref().expect("a run").run_id.clone();
    let script = [
        (Role::Assistant, json!({})),
        (Role::Assistant, json!({"final": true})),
        (Role::HumanInput, json!({})),
        (Role::Assistant, json!({"final": false})),
        (Role::Assistant, json!({"final": 1})),
        (Role::Assistant, json!({"final": true, "scripted": true})),
    ];
    for (i, (role, metadata)) in script.into_iter().enumerate() {
        let draft = transitions::MessageDraft {
            id: None,
            run_id: Some(run_id.clone()),
            role,
            sender: "agent".into(),
            receiver: None,
            content: format!("m{i}"),
            metadata,
        };
        let (change, _) = transitions::agent_message(&record, &run_id, draft, json!(null)).expect("plans");
        record = apply(&store, change).await;
    }
    let id = record.chat.id.clone();
    let q = |after_seq, limit, descending| SeqQuery {
        after_seq,
        limit,
        descending,
        view: MessageView::Final,
        ..SeqQuery::default()
    };
    let contents = |m: Vec<Message>| m.into_iter().map(|m| m.content).collect::<Vec<_>>();
    let got = store.messages(&id, &q(None, 100, false)).await.expect("reads");
    assert_eq!(contents(got.clone()), ["q", "m1", "m2", "m5"]);
    let page = store.messages(&id, &q(None, 2, false)).await.expect("reads");
    assert_eq!(contents(page.clone()), ["q", "m1"]);
    let next = store.messages(&id, &q(Some(page[1].seq), 2, false)).await.expect("reads");
    assert_eq!(contents(next), ["m2", "m5"]);
    let newest = store.messages(&id, &q(None, 2, true)).await.expect("reads");
    assert_eq!(contents(newest), ["m5", "m2"]);
    let every = SeqQuery { limit: 100, ..SeqQuery::default() };
    assert_eq!(store.messages(&id, &every).await.expect("reads").len(), 7);
}

pub async fn chat_listing_is_newest_first_and_filters_by_status_and_flow(store: DynStore) {
    let mut all = Vec::new();
    for i in 0..6 {
        let flow = if i % 2 == 0 { "flow_even" } else { "flow_odd" };
        let mut record = create_chat(&store, "tenant_a", flow).await;
        if i % 3 == 0 {
            record = apply(&store, post(&record, "go")).await;
        }
        all.push(record);
    }
    let query = |status, from_flow: Option<&str>| ChatQuery {
        status,
        from_flow: from_flow.map(flow_named),
        limit: 100,
        ..ChatQuery::default()
    };
    let (ids, has_more, cursor) = chat_ids(&store, "tenant_a", query(None, None)).await;
    assert_eq!(ids, newest_first(&all));
    assert!(!has_more && cursor.is_none());

    let running: Vec<ChatRecord> =
        all.iter().filter(|r| r.chat.status == ChatStatus::Running).cloned().collect();
    let (ids, ..) = chat_ids(&store, "tenant_a", query(Some(ChatStatus::Running), None)).await;
    assert_eq!(ids, newest_first(&running));
    let odd: Vec<ChatRecord> = all.iter().filter(|r| r.chat.from_flow == "flow_odd").cloned().collect();
    let (ids, ..) = chat_ids(&store, "tenant_a", query(None, Some("flow_odd"))).await;
    assert_eq!(ids, newest_first(&odd));
    let both: Vec<ChatRecord> = running.iter().filter(|r| r.chat.from_flow == "flow_odd").cloned().collect();
    let (ids, ..) = chat_ids(&store, "tenant_a", query(Some(ChatStatus::Running), Some("flow_odd"))).await;
    assert_eq!(ids, newest_first(&both));
    let (ids, ..) = chat_ids(&store, "tenant_a", query(Some(ChatStatus::Error), None)).await;
    assert!(ids.is_empty());
}

pub async fn chat_pages_follow_after_and_before_without_overlap_or_gap(store: DynStore) {
    let mut all = Vec::new();
    for _ in 0..7 {
        all.push(create_chat(&store, "tenant_a", "flow_a").await);
        create_chat(&store, "tenant_b", "flow_a").await;
    }
    let ids = newest_first(&all);
    let page = |after: Option<&ChatId>, before: Option<&ChatId>| ChatQuery {
        after: after.cloned(),
        before: before.cloned(),
        limit: 3,
        ..ChatQuery::default()
    };
    let (p1, more1, c1) = chat_ids(&store, "tenant_a", page(None, None)).await;
    assert_eq!((p1.as_slice(), more1, c1.as_ref()), (&ids[0..3], true, Some(&ids[2])));
    let (p2, more2, c2) = chat_ids(&store, "tenant_a", page(c1.as_ref(), None)).await;
    assert_eq!((p2.as_slice(), more2, c2.as_ref()), (&ids[3..6], true, Some(&ids[5])));
    let (p3, more3, c3) = chat_ids(&store, "tenant_a", page(c2.as_ref(), None)).await;
    assert_eq!((p3.as_slice(), more3, c3), (&ids[6..7], false, None));

    // Back toward newer chats: the page just before, still newest first; the
    // cursor is its newest id, to pass as `before` again.
    let (b1, more, cursor) = chat_ids(&store, "tenant_a", page(None, Some(&ids[6]))).await;
    assert_eq!((b1.as_slice(), more, cursor.as_ref()), (&ids[3..6], true, Some(&ids[3])));
    let (b2, more, cursor) = chat_ids(&store, "tenant_a", page(None, cursor.as_ref())).await;
    assert_eq!((b2.as_slice(), more, cursor), (&ids[0..3], false, None));
    // Both bounds: the chats strictly between them.
    let (between, ..) = chat_ids(&store, "tenant_a", page(Some(&ids[1]), Some(&ids[5]))).await;
    assert_eq!(between.as_slice(), &ids[2..5]);
}

pub async fn chat_listing_never_shows_another_tenants_chats(store: DynStore) {
    let mine = vec![
        create_chat(&store, "tenant_a", "flow_a").await,
        create_chat(&store, "tenant_a", "flow_a").await,
    ];
    let theirs = create_chat(&store, "tenant_b", "flow_a").await;
    let query = ChatQuery { limit: 100, ..ChatQuery::default() };
    let (ids, ..) = chat_ids(&store, "tenant_a", query.clone()).await;
    assert_eq!(ids, newest_first(&mine));
    let (ids, ..) = chat_ids(&store, "tenant_b", query.clone()).await;
    assert_eq!(ids, vec![theirs.chat.id.clone()]);
    let (ids, ..) = chat_ids(&store, "tenant_c", query).await;
    assert!(ids.is_empty());
}

pub async fn running_chats_finds_exactly_the_running_ones_of_every_tenant(store: DynStore) {
    let mut running = Vec::new();
    for tenant in ["tenant_a", "tenant_b"] {
        let idle = create_chat(&store, tenant, "flow_a").await;
        post_and_cancel(&store, &idle, "done").await;
        create_chat(&store, tenant, "flow_a").await;
        let busy = create_chat(&store, tenant, "flow_a").await;
        running.push(apply(&store, post(&busy, "go")).await);
    }
    let got = store.running_chats().await.expect("reads");
    let got_ids = id_set(got.iter().map(|r| &r.chat.id));
    assert_eq!(got_ids, id_set(running.iter().map(|r| &r.chat.id)));
    for record in &got {
        let want = running.iter().find(|r| r.chat.id == record.chat.id).expect("listed");
        assert_same(record, want);
    }
}

pub async fn deleting_a_chat_removes_its_messages_and_events(store: DynStore) {
    let doomed = create_chat(&store, "tenant_a", "flow_a").await;
    let doomed = post_and_cancel(&store, &doomed, "bye").await;
    let kept = create_chat(&store, "tenant_a", "flow_a").await;
    let kept = post_and_cancel(&store, &kept, "stay").await;

    let deleted_at = store.delete_chat(&doomed.chat.id).await.expect("deletes");
    assert_eq!(deleted_at, Some(doomed.chat.last_seq), "the delete reports the chat's last seq");
    assert_eq!(store.get_chat(&doomed.chat.id).await.expect("reads"), None);
    assert!(all_events(&store, &doomed.chat.id).await.is_empty());
    assert!(all_messages(&store, &doomed.chat.id).await.is_empty());
    assert_eq!(store.delete_chat(&doomed.chat.id).await.expect("deletes"), None);

    assert_eq!(all_events(&store, &kept.chat.id).await.len() as u64, kept.chat.last_seq);
    assert_eq!(all_messages(&store, &kept.chat.id).await.len(), 1);
}
