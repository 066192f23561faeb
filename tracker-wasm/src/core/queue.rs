use std::collections::VecDeque;

/// Encoded events waiting to be sent, oldest first, bounded: when full, the oldest event is
/// dropped and counted, because recent interactions matter more to trending and preferences.
#[derive(Debug, Default)]
pub struct Queue {
    events: VecDeque<String>,
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
        while self.events.len() >= self.capacity {
            self.pop_front();
            self.dropped += 1;
        }
        self.bytes += event.len();
        self.events.push_back(event);
    }

    /// Takes the oldest events that fit `max_events` and `max_bytes` of encoded JSON (each
    /// event counted with its separating comma); always at least one event if any is queued.
    pub fn take(&mut self, max_events: usize, max_bytes: usize) -> Vec<String> {
        let mut taken = Vec::new();
        let mut size = 0;
        while let Some(next) = self.events.front() {
            let cost = next.len() + 1;
            if taken.len() == max_events || (!taken.is_empty() && size + cost > max_bytes) {
                break;
            }
            size += cost;
            taken.extend(self.pop_front());
        }
        taken
    }

    /// Puts a batch that could not be delivered back in front, in its original order; what
    /// no longer fits under the bound is dropped (oldest first) and counted.
    pub fn requeue(&mut self, batch: Vec<String>) {
        for event in batch.into_iter().rev() {
            if self.events.len() >= self.capacity {
                self.dropped += 1;
                continue;
            }
            self.bytes += event.len();
            self.events.push_front(event);
        }
    }

    fn pop_front(&mut self) -> Option<String> {
        let e = self.events.pop_front()?;
        self.bytes -= e.len();
        Some(e)
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
}
