//! A strict CSS colour parser.
//!
//! Accepted forms (surrounding ASCII whitespace is ignored, names and
//! function names are case-insensitive):
//!
//! - the 148 CSS named colours (`steelblue`, `rebeccapurple`, both `gray`
//!   and `grey` spellings), plus `transparent`;
//! - `#rgb`, `#rgba`, `#rrggbb`, `#rrggbbaa`;
//! - `rgb(r, g, b)` and `rgba(r, g, b, a)` with `r`, `g`, `b` plain decimal
//!   numbers in 0–255 and `a` a number in 0–1 or a percentage in 0%–100%.
//!
//! Anything else is rejected with a message listing these forms. A parsed
//! [`Color`] is emitted only in canonical form (`#rrggbb` plus a separate
//! opacity), so no guest string ever reaches an SVG unparsed.

use std::fmt::Write as _;

/// A parsed colour: 8-bit RGB plus an alpha in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Color {
    /// Red, 0–255.
    pub r: u8,
    /// Green, 0–255.
    pub g: u8,
    /// Blue, 0–255.
    pub b: u8,
    /// Opacity, 0.0 (transparent) to 1.0 (opaque).
    pub a: f64,
}

/// The accepted colour syntaxes, for error messages.
pub const ACCEPTED_FORMS: &str = "a CSS colour name (e.g. \"steelblue\"), #rgb, #rgba, #rrggbb, \
#rrggbbaa, rgb(r, g, b) or rgba(r, g, b, a), with r, g, b from 0 to 255 and a from 0 to 1";

impl Color {
    /// Opaque black.
    pub const BLACK: Color = Color::rgb(0, 0, 0);
    /// Opaque white.
    pub const WHITE: Color = Color::rgb(255, 255, 255);

    /// An opaque colour.
    pub const fn rgb(r: u8, g: u8, b: u8) -> Color {
        Color { r, g, b, a: 1.0 }
    }

    /// `#rrggbb`, ignoring alpha.
    pub fn hex(&self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }

    /// `#rrggbb` when opaque, `#rrggbbaa` otherwise (alpha rounded to 8
    /// bits): the canonical form used in normalized JSON.
    pub fn canonical(&self) -> String {
        let mut s = self.hex();
        if self.a < 1.0 {
            let _ = write!(s, "{:02x}", alpha_byte(self.a));
        }
        s
    }

    /// True when fully opaque.
    pub fn is_opaque(&self) -> bool {
        self.a >= 1.0
    }

    /// The alpha as an SVG opacity value with at most three decimals.
    pub fn opacity_str(&self) -> String {
        let v = (self.a.clamp(0.0, 1.0) * 1000.0).round() / 1000.0;
        let mut s = format!("{v:.3}");
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
        s
    }
}

fn alpha_byte(a: f64) -> u8 {
    // Clamped to 0..=255 before the cast, so the cast is exact.
    (a.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Parse a colour in one of the [`ACCEPTED_FORMS`]. The error is a complete
/// message naming the rejected input and listing the accepted forms.
pub fn parse_color(input: &str) -> Result<Color, String> {
    let s = input.trim_matches(|c: char| c.is_ascii_whitespace());
    parse_inner(s).ok_or_else(|| {
        format!(
            "unknown colour {}: use {ACCEPTED_FORMS}",
            super::types::quote_for_message(input)
        )
    })
}

fn parse_inner(s: &str) -> Option<Color> {
    if let Some(hex) = s.strip_prefix('#') {
        return parse_hex(hex);
    }
    // Names and function prefixes are ASCII; anything longer than the
    // longest accepted name or function cannot match, so bound the copy.
    if s.len() > 64 {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    if let Some(args) = lower
        .strip_prefix("rgba(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return parse_function(args, true);
    }
    if let Some(args) = lower.strip_prefix("rgb(").and_then(|r| r.strip_suffix(')')) {
        return parse_function(args, false);
    }
    if lower == "transparent" {
        return Some(Color {
            r: 0,
            g: 0,
            b: 0,
            a: 0.0,
        });
    }
    named(&lower)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn parse_hex(hex: &str) -> Option<Color> {
    let digits: Vec<u8> = match hex.len() {
        3 | 4 | 6 | 8 => hex.bytes().map(hex_digit).collect::<Option<Vec<u8>>>()?,
        _ => return None,
    };
    let (r, g, b, a) = match digits.as_slice() {
        [r, g, b] => (r * 17, g * 17, b * 17, 255),
        [r, g, b, a] => (r * 17, g * 17, b * 17, a * 17),
        [r1, r2, g1, g2, b1, b2] => (r1 * 16 + r2, g1 * 16 + g2, b1 * 16 + b2, 255),
        [r1, r2, g1, g2, b1, b2, a1, a2] => {
            (r1 * 16 + r2, g1 * 16 + g2, b1 * 16 + b2, a1 * 16 + a2)
        }
        _ => return None,
    };
    Some(Color {
        r,
        g,
        b,
        a: f64::from(a) / 255.0,
    })
}

/// A plain decimal number: digits with at most one `.`, no sign, no exponent.
fn plain_number(s: &str) -> Option<f64> {
    let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let mut dots = 0;
    let mut digits = 0;
    for c in s.chars() {
        match c {
            '0'..='9' => digits += 1,
            '.' => dots += 1,
            _ => return None,
        }
    }
    if digits == 0 || dots > 1 {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn channel(s: &str) -> Option<u8> {
    let v = plain_number(s)?;
    if (0.0..=255.0).contains(&v) {
        // In range, so the cast is exact after rounding.
        Some(v.round() as u8)
    } else {
        None
    }
}

fn alpha(s: &str) -> Option<f64> {
    let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let v = match s.strip_suffix('%') {
        Some(p) => plain_number(p)? / 100.0,
        None => plain_number(s)?,
    };
    (0.0..=1.0).contains(&v).then_some(v)
}

fn parse_function(args: &str, with_alpha: bool) -> Option<Color> {
    let parts: Vec<&str> = args.split(',').collect();
    match (with_alpha, parts.as_slice()) {
        (false, [r, g, b]) => Some(Color::rgb(channel(r)?, channel(g)?, channel(b)?)),
        (true, [r, g, b, a]) => Some(Color {
            r: channel(r)?,
            g: channel(g)?,
            b: channel(b)?,
            a: alpha(a)?,
        }),
        _ => None,
    }
}

fn named(lower: &str) -> Option<Color> {
    let i = NAMED
        .binary_search_by(|(name, _)| (*name).cmp(lower))
        .ok()?;
    let (_, rgb) = NAMED.get(i)?;
    Some(Color::rgb(
        (rgb >> 16) as u8,
        ((rgb >> 8) & 0xff) as u8,
        (rgb & 0xff) as u8,
    ))
}

/// The 148 CSS named colours, sorted by name.
const NAMED: [(&str, u32); 148] = [
    ("aliceblue", 0xf0f8ff),
    ("antiquewhite", 0xfaebd7),
    ("aqua", 0x00ffff),
    ("aquamarine", 0x7fffd4),
    ("azure", 0xf0ffff),
    ("beige", 0xf5f5dc),
    ("bisque", 0xffe4c4),
    ("black", 0x000000),
    ("blanchedalmond", 0xffebcd),
    ("blue", 0x0000ff),
    ("blueviolet", 0x8a2be2),
    ("brown", 0xa52a2a),
    ("burlywood", 0xdeb887),
    ("cadetblue", 0x5f9ea0),
    ("chartreuse", 0x7fff00),
    ("chocolate", 0xd2691e),
    ("coral", 0xff7f50),
    ("cornflowerblue", 0x6495ed),
    ("cornsilk", 0xfff8dc),
    ("crimson", 0xdc143c),
    ("cyan", 0x00ffff),
    ("darkblue", 0x00008b),
    ("darkcyan", 0x008b8b),
    ("darkgoldenrod", 0xb8860b),
    ("darkgray", 0xa9a9a9),
    ("darkgreen", 0x006400),
    ("darkgrey", 0xa9a9a9),
    ("darkkhaki", 0xbdb76b),
    ("darkmagenta", 0x8b008b),
    ("darkolivegreen", 0x556b2f),
    ("darkorange", 0xff8c00),
    ("darkorchid", 0x9932cc),
    ("darkred", 0x8b0000),
    ("darksalmon", 0xe9967a),
    ("darkseagreen", 0x8fbc8f),
    ("darkslateblue", 0x483d8b),
    ("darkslategray", 0x2f4f4f),
    ("darkslategrey", 0x2f4f4f),
    ("darkturquoise", 0x00ced1),
    ("darkviolet", 0x9400d3),
    ("deeppink", 0xff1493),
    ("deepskyblue", 0x00bfff),
    ("dimgray", 0x696969),
    ("dimgrey", 0x696969),
    ("dodgerblue", 0x1e90ff),
    ("firebrick", 0xb22222),
    ("floralwhite", 0xfffaf0),
    ("forestgreen", 0x228b22),
    ("fuchsia", 0xff00ff),
    ("gainsboro", 0xdcdcdc),
    ("ghostwhite", 0xf8f8ff),
    ("gold", 0xffd700),
    ("goldenrod", 0xdaa520),
    ("gray", 0x808080),
    ("green", 0x008000),
    ("greenyellow", 0xadff2f),
    ("grey", 0x808080),
    ("honeydew", 0xf0fff0),
    ("hotpink", 0xff69b4),
    ("indianred", 0xcd5c5c),
    ("indigo", 0x4b0082),
    ("ivory", 0xfffff0),
    ("khaki", 0xf0e68c),
    ("lavender", 0xe6e6fa),
    ("lavenderblush", 0xfff0f5),
    ("lawngreen", 0x7cfc00),
    ("lemonchiffon", 0xfffacd),
    ("lightblue", 0xadd8e6),
    ("lightcoral", 0xf08080),
    ("lightcyan", 0xe0ffff),
    ("lightgoldenrodyellow", 0xfafad2),
    ("lightgray", 0xd3d3d3),
    ("lightgreen", 0x90ee90),
    ("lightgrey", 0xd3d3d3),
    ("lightpink", 0xffb6c1),
    ("lightsalmon", 0xffa07a),
    ("lightseagreen", 0x20b2aa),
    ("lightskyblue", 0x87cefa),
    ("lightslategray", 0x778899),
    ("lightslategrey", 0x778899),
    ("lightsteelblue", 0xb0c4de),
    ("lightyellow", 0xffffe0),
    ("lime", 0x00ff00),
    ("limegreen", 0x32cd32),
    ("linen", 0xfaf0e6),
    ("magenta", 0xff00ff),
    ("maroon", 0x800000),
    ("mediumaquamarine", 0x66cdaa),
    ("mediumblue", 0x0000cd),
    ("mediumorchid", 0xba55d3),
    ("mediumpurple", 0x9370db),
    ("mediumseagreen", 0x3cb371),
    ("mediumslateblue", 0x7b68ee),
    ("mediumspringgreen", 0x00fa9a),
    ("mediumturquoise", 0x48d1cc),
    ("mediumvioletred", 0xc71585),
    ("midnightblue", 0x191970),
    ("mintcream", 0xf5fffa),
    ("mistyrose", 0xffe4e1),
    ("moccasin", 0xffe4b5),
    ("navajowhite", 0xffdead),
    ("navy", 0x000080),
    ("oldlace", 0xfdf5e6),
    ("olive", 0x808000),
    ("olivedrab", 0x6b8e23),
    ("orange", 0xffa500),
    ("orangered", 0xff4500),
    ("orchid", 0xda70d6),
    ("palegoldenrod", 0xeee8aa),
    ("palegreen", 0x98fb98),
    ("paleturquoise", 0xafeeee),
    ("palevioletred", 0xdb7093),
    ("papayawhip", 0xffefd5),
    ("peachpuff", 0xffdab9),
    ("peru", 0xcd853f),
    ("pink", 0xffc0cb),
    ("plum", 0xdda0dd),
    ("powderblue", 0xb0e0e6),
    ("purple", 0x800080),
    ("rebeccapurple", 0x663399),
    ("red", 0xff0000),
    ("rosybrown", 0xbc8f8f),
    ("royalblue", 0x4169e1),
    ("saddlebrown", 0x8b4513),
    ("salmon", 0xfa8072),
    ("sandybrown", 0xf4a460),
    ("seagreen", 0x2e8b57),
    ("seashell", 0xfff5ee),
    ("sienna", 0xa0522d),
    ("silver", 0xc0c0c0),
    ("skyblue", 0x87ceeb),
    ("slateblue", 0x6a5acd),
    ("slategray", 0x708090),
    ("slategrey", 0x708090),
    ("snow", 0xfffafa),
    ("springgreen", 0x00ff7f),
    ("steelblue", 0x4682b4),
    ("tan", 0xd2b48c),
    ("teal", 0x008080),
    ("thistle", 0xd8bfd8),
    ("tomato", 0xff6347),
    ("turquoise", 0x40e0d0),
    ("violet", 0xee82ee),
    ("wheat", 0xf5deb3),
    ("white", 0xffffff),
    ("whitesmoke", 0xf5f5f5),
    ("yellow", 0xffff00),
    ("yellowgreen", 0x9acd32),
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for w in NAMED.windows(2) {
            assert!(w[0].0 < w[1].0, "{} before {}", w[0].0, w[1].0);
        }
    }

    #[test]
    fn every_name_parses() {
        for (name, rgb) in NAMED {
            let c = parse_color(name).unwrap();
            assert_eq!(c.hex(), format!("#{rgb:06x}"));
            assert_eq!(parse_color(&name.to_ascii_uppercase()).unwrap(), c);
        }
    }

    #[test]
    fn names() {
        assert_eq!(parse_color("red").unwrap(), Color::rgb(255, 0, 0));
        assert_eq!(parse_color("  SteelBlue ").unwrap().hex(), "#4682b4");
        assert_eq!(parse_color("rebeccapurple").unwrap().hex(), "#663399");
        assert_eq!(parse_color("transparent").unwrap().a, 0.0);
    }

    #[test]
    fn hex_forms() {
        assert_eq!(parse_color("#f00").unwrap(), Color::rgb(255, 0, 0));
        assert_eq!(parse_color("#FF8000").unwrap(), Color::rgb(255, 128, 0));
        let c = parse_color("#ff000080").unwrap();
        assert_eq!(c.hex(), "#ff0000");
        assert_eq!(c.canonical(), "#ff000080");
        assert_eq!(c.opacity_str(), "0.502");
        let c = parse_color("#0f08").unwrap();
        assert_eq!(c.canonical(), "#00ff0088");
        assert_eq!(parse_color("#abcdef").unwrap().canonical(), "#abcdef");
    }

    #[test]
    fn functional_forms() {
        assert_eq!(
            parse_color("rgb(255, 0, 10)").unwrap(),
            Color::rgb(255, 0, 10)
        );
        assert_eq!(parse_color("RGB( 1 ,2,3 )").unwrap(), Color::rgb(1, 2, 3));
        assert_eq!(
            parse_color("rgb(127.6, 0, 0)").unwrap(),
            Color::rgb(128, 0, 0)
        );
        let c = parse_color("rgba(0, 0, 255, 0.25)").unwrap();
        assert_eq!((c.b, c.a), (255, 0.25));
        assert_eq!(c.opacity_str(), "0.25");
        assert_eq!(c.canonical(), "#0000ff40");
        assert_eq!(parse_color("rgba(0,0,0,50%)").unwrap().a, 0.5);
        assert_eq!(parse_color("rgba(0,0,0,1)").unwrap().canonical(), "#000000");
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "#",
            "#12",
            "#12345",
            "#1234567",
            "#123456789",
            "#ggg",
            "#ff00zz",
            "notacolor",
            "red;",
            "rgb(256, 0, 0)",
            "rgb(-1, 0, 0)",
            "rgb(1, 2)",
            "rgb(1, 2, 3, 0.5)",
            "rgba(1, 2, 3)",
            "rgba(1, 2, 3, 1.5)",
            "rgba(1, 2, 3, 101%)",
            "rgb(1e2, 0, 0)",
            "rgb(nan, 0, 0)",
            "rgb(1 2 3)",
            "rgb(1, 2, 3",
            "hsl(0, 100%, 50%)",
            "url(#x)",
            "red\" onload=\"x",
        ] {
            let err = parse_color(bad).unwrap_err();
            assert!(err.contains("#rrggbb"), "{bad:?}: {err}");
            assert!(err.starts_with("unknown colour"), "{err}");
        }
    }

    #[test]
    fn long_input_is_clipped_in_message() {
        let long = "x".repeat(10_000);
        let err = parse_color(&long).unwrap_err();
        assert!(err.len() < 400, "{}", err.len());
    }
}
