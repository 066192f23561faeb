/// Encoded events waiting to be sent, oldest first, bounded: when full, the oldest event is
/// dropped and counted, because recent interactions matter more to trending and preferences.
/// A `Vec` rather than a `VecDeque`: taking from the front moves at most the queue bound's
/// pointers, and the wasm is smaller for it.
#[derive(Debug, Default)]
pub struct Queue {
    events: Vec<String>,
    bytes: usize,
    capacity: usize,
    dropped: u64,
}

impl Queue {
    pub fn new(capacity: usize) -> Queue {
        Queue {
            capacity,
            ..Queue::default()
        }
    }

    pub fn push(&mut self, event: String) {
        if self.events.len() >= self.capacity {
            let over = self.events.len() + 1 - self.capacity;
            self.dropped += over as u64;
            self.take_front(over);
        }
        self.bytes += event.len();
        self.events.push(event);
    }

    /// Takes the oldest events that fit `max_events` and `max_bytes` of encoded JSON (each
    /// event counted with its separating comma); always at least one event if any is queued.
    pub fn take(&mut self, max_events: usize, max_bytes: usize) -> Vec<String> {
        let mut n = 0;
        let mut size = 0;
        for next in &self.events {
            let cost = next.len() + 1;
            if n == max_events || (n > 0 && size + cost > max_bytes) {
                break;
            }
            size += cost;
            n += 1;
        }
        self.take_front(n)
    }

    /// Puts a batch that could not be delivered back in front, in its original order; what
    /// no longer fits under the bound is dropped (oldest first) and counted.
    pub fn requeue(&mut self, mut batch: Vec<String>) {
        let room = self.capacity.saturating_sub(self.events.len());
        let over = batch.len().saturating_sub(room);
        self.dropped += over as u64;
        let mut kept = batch.split_off(over);
        self.bytes += kept.iter().map(String::len).sum::<usize>();
        kept.append(&mut self.events);
        self.events = kept;
    }

    /// Removes and returns the `n` oldest events.
    fn take_front(&mut self, n: usize) -> Vec<String> {
        let rest = self.events.split_off(n.min(self.events.len()));
        let taken = std::mem::replace(&mut self.events, rest);
        self.bytes -= taken.iter().map(String::len).sum::<usize>();
        taken
    }

    /// Queued events, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.events.iter()
    }

    /// Forgets every queued event (consent withdrawn); not counted as dropped.
    pub fn clear(&mut self) {
        self.events.clear();
        self.bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Encoded bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(items: &[&str], cap: usize) -> Queue {
        let mut q = Queue::new(cap);
        items.iter().for_each(|s| q.push(s.to_string()));
        q
    }

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        let mut q = q(&["a", "b", "c", "d"], 3);
        assert_eq!(q.dropped(), 1);
        assert_eq!(q.take(10, 1000), ["b", "c", "d"]);
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn take_respects_count_and_bytes() {
        let mut q = q(&["aaaa", "bbbb", "cccc", "dddd"], 10);
        assert_eq!(q.take(3, 1000), ["aaaa", "bbbb", "cccc"]);
        let mut q2 = self::q(&["aaaa", "bbbb", "cccc"], 10);
        assert_eq!(q2.take(10, 10), ["aaaa", "bbbb"]);
        assert_eq!(
            q2.take(10, 1),
            ["cccc"],
            "one oversize event still goes alone"
        );
        assert!(q2.take(10, 10).is_empty());
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn requeue_restores_order_in_front() {
        let mut q = q(&["a", "b", "c"], 10);
        let batch = q.take(2, 100);
        q.push("d".into());
        q.requeue(batch);
        assert_eq!(q.take(10, 100), ["a", "b", "c", "d"]);
    }

    #[test]
    fn requeue_into_a_full_queue_counts_what_it_drops() {
        let mut q = q(&["a", "b"], 2);
        let batch = q.take(1, 100);
        q.push("c".into());
        q.requeue(batch);
        assert_eq!(q.dropped(), 1);
        assert_eq!(q.take(10, 100), ["b", "c"]);
    }

    #[test]
    fn requeue_keeps_the_newest_of_a_batch_that_partly_fits() {
        let mut q = q(&["a", "bb", "ccc"], 4);
        let batch = q.take(3, 100);
        q.push("dddd".into());
        q.push("eeeee".into());
        q.requeue(batch);
        assert_eq!((q.dropped(), q.len(), q.bytes()), (1, 4, 14));
        assert_eq!(q.take(10, 100), ["bb", "ccc", "dddd", "eeeee"]);
        assert_eq!(q.bytes(), 0);
    }
}
