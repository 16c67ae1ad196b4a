//! Tasks (protocol revision 2025-11-25) through the aggregate endpoint.
//!
//! A backend names its tasks in its own id space, and two backends may both
//! have a task `1`. The aggregate endpoint therefore shows a task of backend
//! `b` as `b__<id>` (the separator of exposed tool names, which backend names
//! cannot contain) and routes `tasks/get`, `tasks/result` and `tasks/cancel` by
//! that prefix. A backend connection is shared by many users, so the hub also
//! remembers who created each task: only that user can see, fetch or cancel it,
//! `tasks/list` shows each user their own, and `notifications/tasks/status`
//! reaches only the session that created the task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use gatehouse_proto::RawObject;
use gatehouse_proto::jsonrpc::to_raw;
use serde_json::Value;
use serde_json::value::RawValue;

use super::naming::SEP as SEPARATOR;

/// `_meta` key that ties a message to a task.
pub const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";

/// How long the hub remembers a task without a TTL of its own.
const DEFAULT_KEEP: Duration = Duration::from_secs(24 * 3600);
/// Most tasks remembered at once; the oldest are forgotten first.
const MAX_TASKS: usize = 100_000;

/// Who created a task, and until when the hub remembers it.
#[derive(Clone, Debug)]
pub struct TaskOwner {
    /// The user that created it.
    pub user: String,
    /// The session that created it: status notifications go there.
    pub session: String,
    expires: Instant,
}

/// The tasks created through the aggregate endpoint, by backend and the backend's id.
#[derive(Default)]
pub struct TaskBook {
    tasks: DashMap<(Arc<str>, String), TaskOwner>,
}

/// The id the aggregate endpoint shows for task `id` of `backend`.
pub fn exposed(backend: &str, id: &str) -> String {
    format!("{backend}{SEPARATOR}{id}")
}

/// The backend and its own id behind an exposed task id.
pub fn split(exposed: &str) -> Option<(&str, &str)> {
    exposed.split_once(SEPARATOR).filter(|(b, id)| !b.is_empty() && !id.is_empty())
}

impl TaskBook {
    /// Remembers that `user` (in `session`) created task `id` on `backend`,
    /// for its TTL (milliseconds, when the backend gave one).
    pub fn record(&self, backend: &Arc<str>, id: &str, user: &str, session: &str, ttl_ms: Option<u64>) {
        let keep = ttl_ms.map_or(DEFAULT_KEEP, |ms| Duration::from_millis(ms).min(DEFAULT_KEEP));
        if self.tasks.len() >= MAX_TASKS {
            self.purge();
        }
        let owner = TaskOwner { user: user.to_owned(), session: session.to_owned(), expires: Instant::now() + keep };
        self.tasks.insert((backend.clone(), id.to_owned()), owner);
    }

    /// Who created task `id` of `backend`, while the hub remembers it.
    pub fn owner(&self, backend: &str, id: &str) -> Option<TaskOwner> {
        let key = (Arc::<str>::from(backend), id.to_owned());
        let owner = self.tasks.get(&key)?.clone();
        (owner.expires > Instant::now()).then_some(owner)
    }

    /// Whether `user` created task `id` of `backend`.
    pub fn owned_by(&self, backend: &str, id: &str, user: &str) -> bool {
        self.owner(backend, id).is_some_and(|o| o.user == user)
    }

    /// Forgets expired tasks, then the oldest while there are too many.
    fn purge(&self) {
        let now = Instant::now();
        self.tasks.retain(|_, o| o.expires > now);
        if self.tasks.len() >= MAX_TASKS {
            let mut by_age: Vec<_> = self.tasks.iter().map(|e| (e.value().expires, e.key().clone())).collect();
            by_age.sort_by_key(|(expires, _)| *expires);
            for (_, key) in by_age.into_iter().take(MAX_TASKS / 10) {
                self.tasks.remove(&key);
            }
        }
    }
}

/// The task a `tools/call` answer created (`CreateTaskResult`): its id and TTL.
pub fn created(result: &RawValue) -> Option<(String, Option<u64>)> {
    let obj = RawObject::parse(Some(result)).ok()?;
    let task = obj.get_as::<RawObject>("task")?;
    Some((task.get_str("taskId")?, task.get_as::<u64>("ttl")))
}

/// Rewrites every task id in a task-related result or notification of
/// `backend` to the exposed one: `taskId` at the top (`tasks/get`,
/// `tasks/cancel`, status notifications), in `task` (`CreateTaskResult`), in
/// each `tasks[]` entry (`tasks/list`) and in `_meta`'s related task
/// (`tasks/result`). Everything else stays as the backend sent it.
pub fn expose_ids(raw: Box<RawValue>, backend: &str) -> Box<RawValue> {
    let Ok(mut obj) = RawObject::parse(Some(&raw)) else { return raw };
    let mut changed = expose_in(&mut obj, backend);
    if let Some(mut task) = obj.get_as::<RawObject>("task")
        && expose_in(&mut task, backend)
    {
        obj.set("task", task.to_raw());
        changed = true;
    }
    if let Some(mut tasks) = obj.get_as::<Vec<RawObject>>("tasks") {
        let mut any = false;
        for t in &mut tasks {
            any |= expose_in(t, backend);
        }
        if any {
            obj.set("tasks", to_raw(&tasks));
            changed = true;
        }
    }
    if let Some(mut meta) = obj.get_as::<RawObject>("_meta")
        && let Some(mut related) = meta.get_as::<RawObject>(RELATED_TASK)
        && expose_in(&mut related, backend)
    {
        meta.set(RELATED_TASK, related.to_raw());
        obj.set("_meta", meta.to_raw());
        changed = true;
    }
    if changed { obj.to_raw() } else { raw }
}

fn expose_in(obj: &mut RawObject, backend: &str) -> bool {
    match obj.get_str("taskId") {
        Some(id) => {
            obj.set("taskId", to_raw(&Value::String(exposed(backend, &id))));
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: Value) -> Box<RawValue> {
        to_raw(&v)
    }

    fn value(r: &RawValue) -> Value {
        serde_json::from_str(r.get()).unwrap()
    }

    #[test]
    fn ids_are_prefixed_by_backend_and_split_back() {
        assert_eq!(exposed("everything", "7f3a"), "everything__7f3a");
        assert_eq!(split("everything__7f3a"), Some(("everything", "7f3a")));
        // A backend's own id may contain the separator: only the first one splits.
        assert_eq!(split("b__x__y"), Some(("b", "x__y")));
        assert_eq!(split("no-separator"), None);
        assert_eq!(split("__x"), None);
    }

    #[test]
    fn every_place_a_task_id_travels_is_rewritten() {
        let created = raw(json!({ "task": { "taskId": "1", "status": "working", "ttl": 60000 } }));
        assert_eq!(super::created(&created), Some(("1".into(), Some(60000))));
        assert_eq!(value(&expose_ids(created, "b"))["task"]["taskId"], "b__1");
        let got = expose_ids(raw(json!({ "taskId": "1", "status": "completed" })), "b");
        assert_eq!(value(&got), json!({ "taskId": "b__1", "status": "completed" }));
        let list = expose_ids(raw(json!({ "tasks": [{ "taskId": "1" }, { "taskId": "2" }], "nextCursor": "c" })), "b");
        assert_eq!(value(&list), json!({ "tasks": [{ "taskId": "b__1" }, { "taskId": "b__2" }], "nextCursor": "c" }));
        let result = expose_ids(raw(json!({ "content": [], "_meta": { RELATED_TASK: { "taskId": "1" }, "x": 1 } })), "b");
        assert_eq!(value(&result)["_meta"], json!({ RELATED_TASK: { "taskId": "b__1" }, "x": 1 }));
        // A plain result is passed on byte for byte.
        let plain = raw(json!({ "content": [{ "type": "text", "text": "taskId" }] }));
        let text = plain.get().to_owned();
        assert_eq!(expose_ids(plain, "b").get(), text);
    }

    #[test]
    fn tasks_belong_to_their_creator_until_they_expire() {
        let book = TaskBook::default();
        let b: Arc<str> = "b".into();
        book.record(&b, "1", "alice", "s1", None);
        book.record(&b, "2", "alice", "s1", Some(0));
        assert!(book.owned_by("b", "1", "alice"));
        assert!(!book.owned_by("b", "1", "bob"));
        assert!(!book.owned_by("c", "1", "alice"));
        assert_eq!(book.owner("b", "1").unwrap().session, "s1");
        assert!(book.owner("b", "2").is_none(), "a task past its TTL is forgotten");
    }
}
