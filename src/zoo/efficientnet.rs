//! (being written)

use super::ZooModel;

pub fn models() -> Vec<ZooModel> {
    vec![]
}
