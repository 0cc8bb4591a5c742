//! Image references as runtimes report them: the event crate's
//! [`falco_learn_event::image::Reference`] (one home for images).

pub use falco_learn_event::image::{is_image_id, Reference};
