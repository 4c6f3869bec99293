//! [`TopologyTestDriver`]: a topology without a broker.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::marker::PhantomData;
use std::rc::Rc;

use weir_core::{Codec, DeadLetter, ErrorClass, Headers, Record, Timestamp};
use weir_dsl::{Store, TaskExecutor, Topology, Windowed, WindowedStore};
use weir_state::{InMemoryBackend, KeyRange, TaskState};

/// Runs a [`Topology`] in memory: records piped into a source topic are
/// processed at once, deterministically, on partition 0; outputs are queued
/// per topic. Outputs to a topic the topology also reads are fed back in, as
/// they would be through a broker.
///
/// # Examples
/// ```
/// use weir_core::Str;
/// use weir_dsl::TopologyBuilder;
/// use weir_testkit::TopologyTestDriver;
///
/// let b = TopologyBuilder::new();
/// b.stream("in", Str, Str).map_values(|v: String| v.to_uppercase()).to("out");
/// let driver = TopologyTestDriver::new(b.build().unwrap());
/// driver.input_topic("in", Str, Str).pipe_input("k".into(), "hi".into());
/// assert_eq!(driver.output_topic("out", Str, Str).read_values_to_list(), vec!["HI"]);
/// ```
#[derive(Clone)]
pub struct TopologyTestDriver {
    state: Rc<RefCell<DriverState>>,
}

struct DriverState {
    topology: Topology,
    executors: Vec<TaskExecutor>,
    /// Each task's stores (in memory); committed after every piped record.
    states: Vec<TaskState>,
    outputs: BTreeMap<String, VecDeque<Record>>,
    next_offset: BTreeMap<String, i64>,
    dead_letter_topic: String,
    wall_clock: Timestamp,
    queue: VecDeque<Record>,
    out: Vec<Record>,
    /// Records that arrived after their windows closed.
    late: u64,
    /// The stream time last marked by each writer of each repartition topic.
    marked: BTreeMap<(String, usize), Timestamp>,
    /// Tasks waiting for an unavailable node (a circuit breaker open):
    /// until when, and their records in order, the first not processed.
    blocked: BTreeMap<usize, (Timestamp, VecDeque<Record>)>,
}

impl DriverState {
    /// The task state holding `name`, and the store's id there.
    fn find_store(&self, name: &str) -> (&TaskState, usize) {
        self.states
            .iter()
            .find_map(|s| s.store_id(name).ok().map(|id| (s, id)))
            .unwrap_or_else(|| panic!("the topology has no store named {name}"))
    }

    /// Gives `record` the next offset of its topic (partition 0) and queues it.
    fn enqueue(&mut self, mut record: Record, queue: &mut VecDeque<Record>) {
        let offset = match self.next_offset.get_mut(&record.topic) {
            Some(o) => o,
            None => self.next_offset.entry(record.topic.clone()).or_insert(0),
        };
        record.partition = 0;
        record.offset = *offset;
        *offset += 1;
        queue.push_back(record);
    }

    /// Stream-time markers, as the runtime writes them at commits: each
    /// task writing a repartition topic sends its stream time when it
    /// moved since its last marker (see `weir_core::StreamTimeMarker`).
    fn markers(&mut self) -> Vec<Record> {
        let mut out = Vec::new();
        for (topic, _) in self.topology.repartition_topics() {
            if !self.topology.carries_markers(&topic) {
                continue;
            }
            let writers = self.topology.writers_of(&topic);
            for &s in &writers {
                let Some(time) = self.executors[s].stream_time() else {
                    continue;
                };
                let key = (topic.clone(), s);
                if self.marked.get(&key).is_some_and(|&m| m >= time) {
                    continue;
                }
                self.marked.insert(key, time);
                let m = weir_core::StreamTimeMarker {
                    time,
                    writer: format!("{s}.0"),
                    writers: writers.len() as u32,
                    idle: false,
                };
                out.push(m.to_record(&topic));
            }
        }
        out
    }

    /// Appends an output to its topic's queue.
    fn append(&mut self, record: Record) {
        match self.outputs.get_mut(&record.topic) {
            Some(q) => q.push_back(record),
            None => {
                self.outputs
                    .entry(record.topic.clone())
                    .or_default()
                    .push_back(record);
            }
        }
    }
}

impl DriverState {
    /// Fires the due timers of every task, then processes the queued
    /// records and what they lead to (timers included) to completion, and
    /// commits: every step of the driver is its own transaction.
    fn run(&mut self) {
        // Reused buffers: the driver's own cost per record stays small.
        let mut queue = std::mem::take(&mut self.queue);
        let mut out = std::mem::take(&mut self.out);
        // Tasks whose wait is over take their records again, first.
        let wall = self.wall_clock;
        let unblocked: Vec<usize> = self
            .blocked
            .iter()
            .filter(|(_, (until, _))| *until <= wall)
            .map(|(sub, _)| *sub)
            .collect();
        for sub in unblocked {
            if let Some((_, records)) = self.blocked.remove(&sub) {
                for r in records.into_iter().rev() {
                    queue.push_front(r);
                }
            }
        }
        for sub in 0..self.executors.len() {
            self.fire(sub, &mut out, &mut queue);
        }
        loop {
            let Some(record) = queue.pop_front() else {
                // Drained: upstream stream time reaches the downstream tasks.
                let markers = self.markers();
                if markers.is_empty() {
                    break;
                }
                for m in markers {
                    self.enqueue(m, &mut queue);
                }
                continue;
            };
            let Some(sub) = self.topology.subtopology_of(&record.topic) else {
                self.append(record);
                continue;
            };
            if let Some((_, held)) = self.blocked.get_mut(&sub) {
                held.push_back(record);
                continue;
            }
            // Stream-time timers due by the record's time fire before it.
            self.executors[sub].advance_for(&record);
            self.fire(sub, &mut out, &mut queue);
            if let Err(e) = self.executors[sub].process(&record, &mut out, &mut self.states[sub]) {
                if let weir_core::ProcessError::Unavailable { retry_at, .. } = e {
                    // Not processed: the task waits until then.
                    self.blocked
                        .insert(sub, (retry_at, VecDeque::from([record])));
                    self.route(&mut out, &mut queue);
                    continue;
                }
                assert!(
                    e.class() != ErrorClass::Fatal,
                    "TopologyTestDriver: the task cannot go on: {e}"
                );
                self.late += u64::from(e.is_late());
                if !e.is_dropped_late() {
                    let dl = DeadLetter::from(&e).to_record(
                        &self.dead_letter_topic,
                        &record,
                        self.wall_clock,
                    );
                    out.push(dl);
                }
            }
            self.route(&mut out, &mut queue);
            // Timers the record set in the past fire at once.
            self.fire(sub, &mut out, &mut queue);
        }
        self.queue = queue;
        self.out = out;
        // Every piped record is its own commit: stores show its effects.
        for (exec, state) in self.executors.iter_mut().zip(&mut self.states) {
            state
                .commit(Vec::new())
                .expect("in-memory stores do not fail");
            exec.committed();
        }
    }

    /// Fires the due timers of task `sub`: their outputs and dead letters
    /// go to `out`'s topics (and back into `queue` for topics it reads).
    fn fire(&mut self, sub: usize, out: &mut Vec<Record>, queue: &mut VecDeque<Record>) {
        while self.executors[sub].has_due_timers() {
            let run = self.executors[sub]
                .fire_timers(out, &mut self.states[sub], usize::MAX)
                .unwrap_or_else(|e| panic!("TopologyTestDriver: the task cannot go on: {e}"));
            for (record, e) in run.failed {
                match record {
                    Some(r) => {
                        let dl = DeadLetter::from(&e).to_record(
                            &self.dead_letter_topic,
                            &r,
                            self.wall_clock,
                        );
                        out.push(dl);
                    }
                    None => eprintln!("TopologyTestDriver: a punctuation failed: {e}"),
                }
            }
            self.route(out, queue);
            if run.fired == 0 {
                break;
            }
        }
    }

    /// Appends outputs to their topics, and queues those a source reads.
    fn route(&mut self, out: &mut Vec<Record>, queue: &mut VecDeque<Record>) {
        for o in out.drain(..) {
            if self.topology.subtopology_of(&o.topic).is_some() {
                self.enqueue(o.clone(), queue);
            }
            self.append(o);
        }
    }
}

impl TopologyTestDriver {
    /// A driver for `topology`; dead letters go to the topology's DLQ topic,
    /// or `test-dlq` when it names none.
    pub fn new(topology: Topology) -> Self {
        let dead_letter_topic = topology
            .dead_letter_topic()
            .unwrap_or("test-dlq")
            .to_string();
        let executors: Vec<TaskExecutor> = (0..topology.subtopology_count())
            .map(|st| {
                let mut e = TaskExecutor::new(topology.clone(), st, 0);
                e.set_dead_letter_topic(dead_letter_topic.as_str());
                e
            })
            .collect();
        let states = executors
            .iter()
            .map(|e| {
                let names = e.store_names().to_vec();
                TaskState::new(Box::new(InMemoryBackend::new(names.len())), names)
            })
            .collect();
        Self {
            state: Rc::new(RefCell::new(DriverState {
                topology,
                executors,
                states,
                outputs: BTreeMap::new(),
                next_offset: BTreeMap::new(),
                dead_letter_topic,
                wall_clock: 0,
                late: 0,
                marked: BTreeMap::new(),
                blocked: BTreeMap::new(),
                queue: VecDeque::new(),
                out: Vec::new(),
            })),
        }
    }

    /// The topic dead letters are written to.
    pub fn dead_letter_topic(&self) -> String {
        self.state.borrow().dead_letter_topic.clone()
    }

    /// How many records arrived after every window they belong to closed
    /// (dropped, or dead-lettered with kind `late`).
    pub fn late_records(&self) -> u64 {
        self.state.borrow().late
    }

    /// A typed handle for piping records into `topic`.
    pub fn input_topic<K, V>(
        &self,
        topic: &str,
        key_codec: impl Codec<K>,
        value_codec: impl Codec<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            driver: self.clone(),
            topic: topic.to_string(),
            key_codec: Box::new(key_codec),
            value_codec: Box::new(value_codec),
            _types: PhantomData,
        }
    }

    /// A typed handle for reading what the topology wrote to `topic`.
    pub fn output_topic<K, V>(
        &self,
        topic: &str,
        key_codec: impl Codec<K>,
        value_codec: impl Codec<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            driver: self.clone(),
            topic: topic.to_string(),
            key_codec: Box::new(key_codec),
            value_codec: Box::new(value_codec),
            _types: PhantomData,
        }
    }

    /// Pipes one serialized record into its topic (which a source must read)
    /// and processes it, and anything it feeds back, to completion — due
    /// timers included (after each record, as the runtime fires them).
    pub fn pipe_raw(&self, record: Record) {
        let mut st = self.state.borrow_mut();
        let st = &mut *st;
        let mut queue = std::mem::take(&mut st.queue);
        st.enqueue(record, &mut queue);
        st.queue = queue;
        st.run();
    }

    /// Sets the system clock the tasks see (wall-clock timers and
    /// punctuations, `ProcessorContext::wall_clock`, and the time written
    /// in `weir.failed_at`), then fires what became due.
    pub fn set_wall_clock(&self, now: Timestamp) {
        let mut st = self.state.borrow_mut();
        st.wall_clock = now;
        for e in &mut st.executors {
            e.set_wall_clock(now);
        }
        st.run();
    }

    /// Moves the system clock the tasks see forward by `ms` (see
    /// [`TopologyTestDriver::set_wall_clock`]).
    pub fn advance_wall_clock(&self, ms: i64) {
        let now = self.state.borrow().wall_clock + ms;
        self.set_wall_clock(now);
    }

    /// The system clock the tasks see.
    pub fn wall_clock(&self) -> Timestamp {
        self.state.borrow().wall_clock
    }

    /// The value of `key` in `store`, if any.
    ///
    /// # Panics
    /// If no task of the topology has the store, or a stored entry does not
    /// decode (a failed test).
    pub fn store_get<K: 'static, V: 'static>(&self, store: &Store<K, V>, key: &K) -> Option<V> {
        let st = self.state.borrow();
        let (state, id) = st.find_store(store.name());
        let k = store.encode_key(key).expect("test key encodes");
        state
            .get(id, &k)
            .expect("in-memory stores do not fail")
            .map(|v| store.decode_value(&v).expect("stored value decodes"))
    }

    /// Every entry of `store`, in the order of the encoded keys.
    ///
    /// # Panics
    /// As [`TopologyTestDriver::store_get`].
    pub fn store_entries<K: 'static, V: 'static>(&self, store: &Store<K, V>) -> Vec<(K, V)> {
        let st = self.state.borrow();
        let (state, id) = st.find_store(store.name());
        state
            .range(id, KeyRange::all())
            .expect("in-memory stores do not fail")
            .map(|r| {
                let (k, v) = r.expect("in-memory stores do not fail");
                (
                    store.decode_key(&k).expect("stored key decodes"),
                    store.decode_value(&v).expect("stored value decodes"),
                )
            })
            .collect()
    }

    /// Every window of window store `store` with its value, in store order
    /// (by segment, key, start).
    ///
    /// # Panics
    /// As [`TopologyTestDriver::store_get`].
    pub fn window_entries<K: 'static, V: 'static>(
        &self,
        store: &WindowedStore<K, V>,
    ) -> Vec<(Windowed<K>, V)> {
        let st = self.state.borrow();
        let (state, id) = st.find_store(store.name());
        state
            .range(id, KeyRange::all())
            .expect("in-memory stores do not fail")
            .filter_map(|r| {
                let (k, v) = r.expect("in-memory stores do not fail");
                store.decode(&k, &v).expect("stored window decodes")
            })
            .collect()
    }

    /// Moves every task's stream time forward to `time` (never back), as
    /// if records up to `time` had been processed.
    pub fn advance_stream_time(&self, time: Timestamp) {
        let mut st = self.state.borrow_mut();
        for e in &mut st.executors {
            e.advance_stream_time(time);
        }
        // Stream-time timers due by then fire.
        st.run();
    }

    /// The stream time of the task that reads `topic`.
    pub fn stream_time(&self, topic: &str) -> Option<Timestamp> {
        let st = self.state.borrow();
        let sub = st.topology.subtopology_of(topic)?;
        st.executors[sub].stream_time()
    }

    /// Takes every record written to `topic` so far, in order.
    pub fn read_raw(&self, topic: &str) -> Vec<Record> {
        self.state
            .borrow_mut()
            .outputs
            .get_mut(topic)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// What the topology's nodes counted since the last call, over all
    /// tasks: per node records in, out and dead-lettered, processors'
    /// counters, and their gauges now (the runtime's registry drains the
    /// same at each commit).
    pub fn take_metrics(&self) -> weir_dsl::TaskMetrics {
        let mut all = weir_dsl::TaskMetrics::default();
        for e in &mut self.state.borrow_mut().executors {
            let m = e.take_metrics();
            all.nodes.extend(m.nodes);
            all.counters.extend(m.counters);
            all.gauges.extend(m.gauges);
        }
        all
    }

    /// Takes every dead letter written so far, in order.
    pub fn dead_letters(&self) -> Vec<Record> {
        let topic = self.dead_letter_topic();
        self.read_raw(&topic)
    }

    /// The topics that have records waiting to be read.
    pub fn output_topics(&self) -> Vec<String> {
        self.state
            .borrow()
            .outputs
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(t, _)| t.clone())
            .collect()
    }
}

/// Pipes typed records into one topic of a [`TopologyTestDriver`].
pub struct TestInputTopic<K, V> {
    driver: TopologyTestDriver,
    topic: String,
    key_codec: Box<dyn Codec<K>>,
    value_codec: Box<dyn Codec<V>>,
    _types: PhantomData<fn(K, V)>,
}

impl<K: 'static, V: 'static> TestInputTopic<K, V> {
    /// Pipes a record with timestamp 0.
    ///
    /// # Panics
    /// If the key or value does not encode: test data is expected to be valid
    /// (use [`TestInputTopic::pipe_raw`] for malformed input).
    pub fn pipe_input(&self, key: K, value: V) {
        self.pipe_input_at(key, value, 0);
    }

    /// Pipes a record with the given timestamp.
    ///
    /// # Panics
    /// As [`TestInputTopic::pipe_input`].
    pub fn pipe_input_at(&self, key: K, value: V, timestamp: Timestamp) {
        let k = self.key_codec.encode(&key).expect("test key encodes");
        let v = self.value_codec.encode(&value).expect("test value encodes");
        self.pipe_raw(Some(k), Some(v), timestamp);
    }

    /// Pipes already-serialized (possibly malformed) bytes.
    pub fn pipe_raw(&self, key: Option<Vec<u8>>, value: Option<Vec<u8>>, timestamp: Timestamp) {
        self.driver.pipe_raw(Record {
            topic: self.topic.clone(),
            partition: 0,
            offset: 0,
            key,
            value,
            headers: Headers::new(),
            timestamp,
        });
    }
}

/// Reads typed records from one output topic of a [`TopologyTestDriver`].
pub struct TestOutputTopic<K, V> {
    driver: TopologyTestDriver,
    topic: String,
    key_codec: Box<dyn Codec<K>>,
    value_codec: Box<dyn Codec<V>>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: 'static, V: 'static> TestOutputTopic<K, V> {
    /// Takes every record written so far as `(key, value)` pairs, in order.
    ///
    /// # Panics
    /// If an output does not decode with this topic's codecs: that is a
    /// failed test.
    pub fn read_key_values_to_list(&self) -> Vec<(K, V)> {
        self.driver
            .read_raw(&self.topic)
            .into_iter()
            .map(|r| {
                let k = match &r.key {
                    Some(b) => self.key_codec.decode(b),
                    None => self.key_codec.decode_null("key"),
                };
                let v = match &r.value {
                    Some(b) => self.value_codec.decode(b),
                    None => self.value_codec.decode_null("value"),
                };
                (
                    k.expect("output key decodes"),
                    v.expect("output value decodes"),
                )
            })
            .collect()
    }

    /// Takes every value written so far, in order.
    ///
    /// # Panics
    /// As [`TestOutputTopic::read_key_values_to_list`].
    pub fn read_values_to_list(&self) -> Vec<V> {
        self.read_key_values_to_list()
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    /// Takes every record written so far, serialized, with headers and timestamps.
    pub fn read_records(&self) -> Vec<Record> {
        self.driver.read_raw(&self.topic)
    }
}
