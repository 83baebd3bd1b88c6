//! The macro behind every config and option struct: the rule is in the crate docs
//! ("Config and option structs").

/// Defines a config or option struct: `#[non_exhaustive]` (so a new field is not a breaking
/// change), its fields public, and one chainable setter per field, named as the field and
/// taking the field's type. Also used by `sockstate-driver`.
#[doc(hidden)]
#[macro_export]
macro_rules! options_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                pub $field:ident: $ty:ty,
            )*
        }
    ) => {
        $(#[$meta])*
        #[non_exhaustive]
        pub struct $name {
            $(
                $(#[$fmeta])*
                pub $field: $ty,
            )*
        }

        impl $name {
            $(
                #[doc = concat!("Sets [`", stringify!($field), "`](Self::", stringify!($field), ").")]
                #[must_use]
                pub fn $field(mut self, value: $ty) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}
