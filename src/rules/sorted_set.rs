//! A set kept as one sorted vector: what a user's proposed groups and roles are held in.
//!
//! A user is proposed two to five groups and a role or two. A `BTreeSet` allocates a node
//! of eleven slots for each set (280 bytes for names, 540 for role grants), which at 100,000
//! evaluated users was 80 MB of a plan's memory; a sorted vector holds what is there, and a
//! binary search finds a place in it.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortedSet<T: Ord>(Vec<T>);

impl<T: Ord> Default for SortedSet<T> {
    fn default() -> Self {
        SortedSet(Vec::new())
    }
}

impl<T: Ord> SortedSet<T> {
    /// Adds `value`; false when it was there already.
    pub fn insert(&mut self, value: T) -> bool {
        match self.0.binary_search(&value) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, value);
                true
            }
        }
    }

    pub fn contains(&self, value: &T) -> bool {
        self.0.binary_search(value).is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values of `self` that `other` lacks, in order.
    pub fn difference<'a>(&'a self, other: &'a SortedSet<T>) -> impl Iterator<Item = &'a T> {
        self.0.iter().filter(|v| !other.contains(v))
    }

    /// The values in one set and not the other, in order (as `BTreeSet`'s).
    pub fn symmetric_difference<'a>(
        &'a self,
        other: &'a SortedSet<T>,
    ) -> std::vec::IntoIter<&'a T> {
        let mut both: Vec<&T> = self
            .difference(other)
            .chain(other.difference(self))
            .collect();
        both.sort();
        both.into_iter()
    }

    /// The values in order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }
}

impl<T: Ord> Extend<T> for SortedSet<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, values: I) {
        for value in values {
            self.insert(value);
        }
    }
}

impl<T: Ord> FromIterator<T> for SortedSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(values: I) -> Self {
        let mut set = SortedSet::default();
        set.extend(values);
        set
    }
}

impl<T: Ord, const N: usize> From<[T; N]> for SortedSet<T> {
    fn from(values: [T; N]) -> Self {
        values.into_iter().collect()
    }
}

impl<T: Ord> IntoIterator for SortedSet<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, T: Ord> IntoIterator for &'a SortedSet<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::SortedSet;

    #[test]
    fn keeps_each_value_once_in_order() {
        let mut set: SortedSet<String> =
            ["fx", "anim", "fx"].iter().map(|s| s.to_string()).collect();
        assert!(!set.insert("anim".into()));
        assert!(set.insert("comp".into()));
        assert_eq!(set.iter().collect::<Vec<_>>(), ["anim", "comp", "fx"]);
        assert_eq!(set.len(), 3);
        assert!(set.contains(&"fx".to_string()));
        assert!(!set.contains(&"lighting".to_string()));
        let other: SortedSet<String> = ["comp", "bg"].iter().map(|s| s.to_string()).collect();
        assert_eq!(set.difference(&other).collect::<Vec<_>>(), ["anim", "fx"]);
        assert_eq!(
            set.symmetric_difference(&other).collect::<Vec<_>>(),
            ["anim", "bg", "fx"]
        );
    }
}
