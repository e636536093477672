//! Words the generator draws from: devices (with regional and field-only names), rooms,
//! numbers, times, durations, politeness and conversational wrappers.

/// What a device can do; intents pick devices by category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Lights (switch, dim).
    Light,
    /// Fans and air purifiers (switch, speed).
    Fan,
    /// Heaters and heat pumps (switch, temperature).
    Heater,
    /// Air conditioning (switch, temperature).
    Cooling,
    /// Thermostats (temperature only).
    Thermostat,
    /// TVs and projectors (switch, volume, media).
    Screen,
    /// Speakers (switch, volume, media).
    Speaker,
    /// Kitchen and laundry appliances (switch).
    Appliance,
    /// Blinds, curtains, garage doors (open/close).
    Cover,
    /// Door locks.
    Door,
    /// Robot vacuums.
    Vacuum,
}

impl Category {
    /// Can be switched on and off.
    pub fn switchable(self) -> bool {
        matches!(
            self,
            Category::Light
                | Category::Fan
                | Category::Heater
                | Category::Cooling
                | Category::Screen
                | Category::Speaker
                | Category::Appliance
        )
    }
    /// Has a level (brightness, volume, speed).
    pub fn dimmable(self) -> bool {
        matches!(
            self,
            Category::Light | Category::Fan | Category::Screen | Category::Speaker
        )
    }
    /// Has a temperature set point.
    pub fn thermal(self) -> bool {
        matches!(
            self,
            Category::Heater | Category::Cooling | Category::Thermostat
        )
    }
    /// Plays media.
    pub fn media(self) -> bool {
        matches!(self, Category::Screen | Category::Speaker)
    }
}

/// Speaker regions (a slice tag).
pub const REGIONS: [&str; 4] = ["us", "uk", "in", "au"];

/// One device name.
#[derive(Debug, Clone, Copy)]
pub struct Device {
    /// Surface form.
    pub name: &'static str,
    /// What it does.
    pub category: Category,
    /// Regions using this name (empty: everywhere).
    pub regions: &'static [&'static str],
    /// Appears only in the field variant.
    pub field_only: bool,
}

const fn dev(name: &'static str, category: Category) -> Device {
    Device {
        name,
        category,
        regions: &[],
        field_only: false,
    }
}

const fn regional(
    name: &'static str,
    category: Category,
    regions: &'static [&'static str],
) -> Device {
    Device {
        name,
        category,
        regions,
        field_only: false,
    }
}

const fn field(name: &'static str, category: Category) -> Device {
    Device {
        name,
        category,
        regions: &[],
        field_only: true,
    }
}

/// All device names.
pub const DEVICES: &[Device] = &[
    dev("light", Category::Light),
    dev("lights", Category::Light),
    dev("lamp", Category::Light),
    dev("ceiling light", Category::Light),
    dev("floor lamp", Category::Light),
    dev("fan", Category::Fan),
    dev("ceiling fan", Category::Fan),
    dev("heater", Category::Heater),
    dev("radiator", Category::Heater),
    dev("air conditioner", Category::Cooling),
    regional("ac", Category::Cooling, &["us", "in"]),
    regional("aircon", Category::Cooling, &["au", "in"]),
    dev("thermostat", Category::Thermostat),
    regional("heating", Category::Thermostat, &["uk", "au"]),
    dev("tv", Category::Screen),
    dev("television", Category::Screen),
    regional("telly", Category::Screen, &["uk", "au"]),
    dev("speaker", Category::Speaker),
    dev("stereo", Category::Speaker),
    dev("coffee machine", Category::Appliance),
    dev("dishwasher", Category::Appliance),
    dev("washing machine", Category::Appliance),
    dev("oven", Category::Appliance),
    regional("kettle", Category::Appliance, &["uk", "au", "in"]),
    regional("geyser", Category::Appliance, &["in"]),
    regional("water heater", Category::Appliance, &["us", "au"]),
    dev("blinds", Category::Cover),
    dev("curtains", Category::Cover),
    dev("shades", Category::Cover),
    dev("garage door", Category::Cover),
    dev("front door", Category::Door),
    dev("back door", Category::Door),
    dev("patio door", Category::Door),
    dev("robot vacuum", Category::Vacuum),
    dev("vacuum", Category::Vacuum),
    regional("hoover", Category::Vacuum, &["uk"]),
    // Field-only names: new hardware shipped after the lab data was collected.
    field("led strip", Category::Light),
    field("pendant light", Category::Light),
    field("air purifier", Category::Fan),
    field("dehumidifier", Category::Fan),
    field("heat pump", Category::Heater),
    field("smart plug", Category::Appliance),
    field("rice cooker", Category::Appliance),
    field("projector", Category::Screen),
    field("soundbar", Category::Speaker),
    field("shutters", Category::Cover),
    field("awning", Category::Cover),
    field("side gate", Category::Door),
    field("mop robot", Category::Vacuum),
];

/// Rooms used everywhere.
pub const ROOMS: &[&str] = &[
    "kitchen",
    "living room",
    "bedroom",
    "bathroom",
    "office",
    "hallway",
    "dining room",
    "kids room",
    "basement",
    "guest room",
];

/// Regional room names: `(region, room)`.
pub const REGIONAL_ROOMS: &[(&str, &str)] = &[
    ("uk", "lounge"),
    ("uk", "landing"),
    ("au", "lounge room"),
    ("in", "hall"),
    ("in", "drawing room"),
    ("us", "den"),
];

/// Rooms that appear only in the field variant.
pub const FIELD_ROOMS: &[&str] = &[
    "nursery",
    "attic",
    "patio",
    "home office",
    "sunroom",
    "studio",
];

/// Polite wrappers per region; `{c}` is the command.
pub fn polite_wrappers(region: &str) -> &'static [&'static str] {
    match region {
        "uk" => &[
            "could you {c}, please",
            "please could you {c}",
            "{c}, cheers",
            "{c} please, ta",
            "would you {c}",
        ],
        "in" => &[
            "kindly {c}",
            "please {c}",
            "{c} please",
            "can you please {c}",
            "please {c} na",
        ],
        "au" => &[
            "{c} thanks mate",
            "could you {c}, cheers",
            "please {c}",
            "{c} please",
        ],
        _ => &[
            "please {c}",
            "{c} please",
            "could you {c}",
            "can you {c} please",
            "would you {c}",
        ],
    }
}

/// Conversational wrappers.
pub const CONVERSATIONAL: &[&str] = &[
    "hey, {c}",
    "ok, {c}",
    "{c} real quick",
    "hey assistant, {c}",
    "so um, {c}",
    "alright, {c} now",
    "{c} when you get a chance",
    "oh and {c}",
];

/// Conversational wrappers seen only in the field.
pub const FIELD_CONVERSATIONAL: &[&str] = &[
    "yo, {c}",
    "right then, {c}",
    "{c}, ta very much",
    "{c} asap",
];

/// Durations.
pub const DURATIONS: &[&str] = &[
    "5 minutes",
    "10 minutes",
    "15 minutes",
    "20 minutes",
    "half an hour",
    "an hour",
    "90 seconds",
    "2 hours",
    "45 minutes",
    "3 minutes",
];

/// Times of day.
pub const TIMES: &[&str] = &[
    "7 am",
    "6:30 am",
    "noon",
    "midnight",
    "9 pm",
    "10:15 pm",
    "19:30",
    "half past six",
    "8 o'clock",
    "5 pm",
    "quarter to eight",
    "11 am",
];

/// Percent values.
pub const PERCENTS: &[&str] = &[
    "10", "20", "25", "30", "40", "50", "60", "70", "75", "80", "90", "100",
];

/// Temperatures (degrees).
pub const TEMPERATURES: &[&str] = &[
    "16", "18", "19", "20", "21", "22", "23", "24", "25", "68", "70", "72",
];
