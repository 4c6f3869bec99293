//! Property test: a task's state (pending writes over a backend) behaves
//! like a simple model — two `BTreeMap`s per store and a snapshot for the
//! savepoint — over random histories of puts, deletes, reads, range and
//! prefix scans, savepoints, commits, aborts and (for RocksDB) close and
//! reopen. The in-memory backend and RocksDB are both checked against it.

use std::collections::BTreeMap;

use proptest::prelude::*;
use weir_state::{InMemoryBackend, KeyRange, KeyValueStore, StateBackend, TaskState};

const STORES: usize = 2;

#[derive(Clone, Debug)]
enum Op {
    Put(usize, Vec<u8>, Vec<u8>),
    Delete(usize, Vec<u8>),
    Get(usize, Vec<u8>),
    Range(usize, Vec<u8>, Vec<u8>),
    Prefix(usize, Vec<u8>),
    All(usize),
    Savepoint,
    Rollback,
    Release,
    Commit,
    Abort,
    Reopen,
    /// A store wiped before a full restore (pending writes dropped too).
    Wipe(usize),
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, 0x7f, 0xff]), 0..4)
}

fn op() -> impl Strategy<Value = Op> {
    let store = 0..STORES;
    prop_oneof![
        6 => (store.clone(), key(), key()).prop_map(|(s, k, v)| Op::Put(s, k, v)),
        3 => (store.clone(), key()).prop_map(|(s, k)| Op::Delete(s, k)),
        3 => (store.clone(), key()).prop_map(|(s, k)| Op::Get(s, k)),
        2 => (store.clone(), key(), key()).prop_map(|(s, a, b)| Op::Range(s, a, b)),
        2 => (store.clone(), key()).prop_map(|(s, p)| Op::Prefix(s, p)),
        1 => store.prop_map(Op::All),
        2 => Just(Op::Savepoint),
        1 => Just(Op::Rollback),
        1 => Just(Op::Release),
        2 => Just(Op::Commit),
        1 => Just(Op::Abort),
        1 => Just(Op::Reopen),
        1 => (0..STORES).prop_map(Op::Wipe),
    ]
}

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// Committed maps, and the visible maps (committed + pending).
#[derive(Default)]
struct Model {
    committed: Vec<Map>,
    visible: Vec<Map>,
    savepoint: Option<Vec<Map>>,
}

impl Model {
    fn new() -> Self {
        Self {
            committed: vec![Map::new(); STORES],
            visible: vec![Map::new(); STORES],
            savepoint: None,
        }
    }

    fn scan(&self, s: usize, r: &KeyRange) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.visible[s]
            .iter()
            .filter(|(k, _)| r.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn names() -> Vec<String> {
    (0..STORES).map(|i| format!("store-{i}")).collect()
}

fn scan(state: &mut TaskState, s: usize, r: KeyRange) -> Vec<(Vec<u8>, Vec<u8>)> {
    state
        .store(s)
        .range(r)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Runs `ops` on the model and on the state `open` returns (called again on
/// Reopen, after the old state is dropped), comparing every read.
fn check(ops: &[Op], mut open: impl FnMut() -> Box<dyn StateBackend>) {
    let mut model = Model::new();
    let mut state = Some(TaskState::new(open(), names()));
    for op in ops {
        let st = state.as_mut().unwrap();
        match op {
            Op::Put(s, k, v) => {
                st.store(*s).put(k, v).unwrap();
                model.visible[*s].insert(k.clone(), v.clone());
            }
            Op::Delete(s, k) => {
                st.store(*s).delete(k).unwrap();
                model.visible[*s].remove(k);
            }
            Op::Get(s, k) => {
                assert_eq!(
                    st.store(*s).get(k).unwrap(),
                    model.visible[*s].get(k).cloned(),
                    "{op:?}"
                );
            }
            Op::Range(s, a, b) => {
                let r = KeyRange::between(a, b);
                assert_eq!(scan(st, *s, r.clone()), model.scan(*s, &r), "{op:?}");
                let r = KeyRange::inclusive(a, b);
                assert_eq!(
                    scan(st, *s, r.clone()),
                    model.scan(*s, &r),
                    "{op:?} inclusive"
                );
            }
            Op::Prefix(s, p) => {
                let got: Vec<_> = st
                    .store(*s)
                    .prefix(p)
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert_eq!(got, model.scan(*s, &KeyRange::prefix(p)), "{op:?}");
            }
            Op::All(s) => {
                assert_eq!(
                    scan(st, *s, KeyRange::all()),
                    model.scan(*s, &KeyRange::all())
                );
            }
            Op::Savepoint => {
                st.savepoint();
                model.savepoint = Some(model.visible.clone());
            }
            Op::Rollback => {
                st.rollback_to_savepoint();
                if let Some(v) = model.savepoint.take() {
                    model.visible = v;
                }
            }
            Op::Release => {
                st.release_savepoint();
                model.savepoint = None;
            }
            Op::Commit => {
                st.commit(vec![("checkpoint".into(), Some(b"x".to_vec()))])
                    .unwrap();
                model.committed = model.visible.clone();
                model.savepoint = None;
            }
            Op::Abort => {
                st.abort();
                model.visible = model.committed.clone();
                model.savepoint = None;
            }
            Op::Wipe(s) => {
                st.wipe(*s).unwrap();
                model.committed[*s].clear();
                model.visible = model.committed.clone();
                model.savepoint = None;
            }
            Op::Reopen => {
                // Pending writes do not survive a close; committed ones do.
                drop(state.take());
                state = Some(TaskState::new(open(), names()));
                model.visible = model.committed.clone();
                model.savepoint = None;
            }
        }
    }
    let st = state.as_mut().unwrap();
    for s in 0..STORES {
        assert_eq!(
            scan(st, s, KeyRange::all()),
            model.scan(s, &KeyRange::all())
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn in_memory_state_matches_the_model(ops in prop::collection::vec(op(), 1..80)) {
        // The in-memory backend cannot survive a reopen: keep one and share it.
        let shared = std::sync::Arc::new(std::sync::Mutex::new(InMemoryBackend::new(STORES)));
        check(&ops, || Box::new(Shared(shared.clone())));
    }

    #[cfg(feature = "rocksdb")]
    #[test]
    fn rocksdb_state_matches_the_model(ops in prop::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let budget = weir_state::StateBudget::new(16 << 20);
        let path = dir.path().join("task");
        check(&ops, || Box::new(weir_state::RocksDbBackend::open(&path, &names(), &budget).unwrap()));
    }
}

/// An in-memory backend that outlives the `TaskState` (a "reopen" sees
/// what was committed).
struct Shared(std::sync::Arc<std::sync::Mutex<InMemoryBackend>>);

impl StateBackend for Shared {
    fn get(&self, store: usize, key: &[u8]) -> Result<Option<Vec<u8>>, weir_state::StoreError> {
        self.0.lock().unwrap().get(store, key)
    }

    fn range(
        &self,
        store: usize,
        range: &KeyRange,
    ) -> Result<weir_state::KvIter<'_>, weir_state::StoreError> {
        let items: Vec<_> = self.0.lock().unwrap().range(store, range)?.collect();
        Ok(Box::new(items.into_iter()))
    }

    fn apply(&mut self, set: weir_state::WriteSet) -> Result<(), weir_state::StoreError> {
        self.0.lock().unwrap().apply(set)
    }

    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, weir_state::StoreError> {
        self.0.lock().unwrap().meta(name)
    }

    fn approximate_len(&self, store: usize) -> Result<u64, weir_state::StoreError> {
        self.0.lock().unwrap().approximate_len(store)
    }

    fn clear(&mut self, store: usize) -> Result<(), weir_state::StoreError> {
        self.0.lock().unwrap().clear(store)
    }
}
