//! The intents of the edge task with their templates.
//!
//! Slots: `{d}` device, `{r}` room, `{p}` percent, `{t}` temperature, `{time}`, `{dur}`.
//! Template groups per intent: `base` (imperatives/questions), `terse`, `indirect` (the intent
//! must be inferred: "it's too dark in the kitchen"), `hard` (negations and corrections whose
//! bag of words equals another intent's: "turn the fan on, not off" vs "turn the fan off, not
//! on"), and `field` (phrasings that only the shifted field variant uses). Queries and status
//! reports share their words too ("is the lamp on" vs "the lamp is on"), so keywords alone
//! cannot separate the classes.

use super::lexicon::Category;

/// Which devices an intent applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// No device slot.
    None,
    /// Switchable devices.
    Switchable,
    /// Dimmable devices.
    Dimmable,
    /// Thermal devices.
    Thermal,
    /// Media devices.
    Media,
    /// Covers.
    Cover,
    /// Doors.
    Door,
    /// Vacuums.
    Vacuum,
    /// Any device.
    Any,
}

impl Target {
    /// Whether `c` fits.
    pub fn accepts(self, c: Category) -> bool {
        match self {
            Target::None => false,
            Target::Switchable => c.switchable(),
            Target::Dimmable => c.dimmable(),
            Target::Thermal => c.thermal(),
            Target::Media => c.media(),
            Target::Cover => c == Category::Cover,
            Target::Door => c == Category::Door,
            Target::Vacuum => c == Category::Vacuum,
            Target::Any => true,
        }
    }
}

/// One intent.
#[derive(Debug, Clone, Copy)]
pub struct IntentSpec {
    /// Label.
    pub name: &'static str,
    /// Devices it applies to.
    pub target: Target,
    /// Plain phrasings.
    pub base: &'static [&'static str],
    /// Terse phrasings.
    pub terse: &'static [&'static str],
    /// Indirect phrasings, optionally pinned to a device category.
    pub indirect: &'static [(Option<Category>, &'static str)],
    /// Negations and corrections (bag-of-words twins of another intent's).
    pub hard: &'static [&'static str],
    /// Field-only phrasings.
    pub field: &'static [&'static str],
    /// Assistant response (`{loc}` is " in the {r}" when a room was named).
    pub response: &'static str,
    /// A question (may end with `?`).
    pub question: bool,
    /// A device status report rather than a user command.
    pub report: bool,
    /// Relative frequency in the lab data.
    pub lab_weight: f64,
    /// Relative frequency in the field data.
    pub field_weight: f64,
}

const NO_INDIRECT: &[(Option<Category>, &str)] = &[];

/// The 27 intents.
pub const INTENTS: &[IntentSpec] = &[
    IntentSpec {
        name: "device_on",
        target: Target::Switchable,
        base: &[
            "turn on the {r} {d}",
            "switch on the {d} in the {r}",
            "turn the {r} {d} on",
            "power on the {r} {d}",
            "start the {d} in the {r}",
        ],
        terse: &["{r} {d} on", "{d} on in the {r}", "{d} on"],
        indirect: &[
            (Some(Category::Light), "it's too dark in the {r}"),
            (Some(Category::Light), "i can't see a thing in the {r}"),
            (Some(Category::Appliance), "i need the {d} in the {r} now"),
        ],
        hard: &[
            "don't turn off the {r} {d}, turn it on",
            "turn the {r} {d} on, not off",
            "no, not off, i want the {r} {d} on",
            "leave the {r} {d} on, don't switch it off",
        ],
        field: &[
            "get the {r} {d} going",
            "fire up the {d} in the {r}",
            "could the {r} {d} be switched on",
            "wake up the {r} {d}",
        ],
        response: "turning on the {d}{loc}.",
        question: false,
        report: false,
        lab_weight: 1.4,
        field_weight: 0.8,
    },
    IntentSpec {
        name: "device_off",
        target: Target::Switchable,
        base: &[
            "turn off the {r} {d}",
            "switch off the {d} in the {r}",
            "turn the {r} {d} off",
            "shut off the {r} {d}",
            "power down the {d} in the {r}",
        ],
        terse: &["{r} {d} off", "{d} off in the {r}", "{d} off"],
        indirect: &[
            (
                Some(Category::Light),
                "nobody is in the {r}, no need for lights",
            ),
            (None, "we're done with the {r} {d}"),
        ],
        hard: &[
            "don't turn on the {r} {d}, turn it off",
            "turn the {r} {d} off, not on",
            "no, not on, i want the {r} {d} off",
            "leave the {r} {d} off, don't switch it on",
        ],
        field: &[
            "kill the {r} {d}",
            "the {r} {d} can go off now",
            "cut the {d} in the {r}",
            "put the {r} {d} to sleep",
        ],
        response: "turning off the {d}{loc}.",
        question: false,
        report: false,
        lab_weight: 1.4,
        field_weight: 0.8,
    },
    IntentSpec {
        name: "set_level",
        target: Target::Dimmable,
        base: &[
            "set the {r} {d} to {p} percent",
            "put the {d} in the {r} at {p} percent",
            "set the {d} to {p}%",
            "change the {r} {d} to {p} percent",
        ],
        terse: &["{r} {d} {p}%", "{d} {p} percent"],
        indirect: NO_INDIRECT,
        hard: &["not {p2} percent for the {r} {d}, set it to {p}"],
        field: &[
            "{p} percent on the {r} {d}",
            "make the {r} {d} {p} percent",
            "dial the {d} in the {r} to {p}",
        ],
        response: "setting the {d}{loc} to {p} percent.",
        question: false,
        report: false,
        lab_weight: 1.0,
        field_weight: 0.8,
    },
    IntentSpec {
        name: "level_up",
        target: Target::Dimmable,
        base: &[
            "turn up the {r} {d}",
            "increase the {d} in the {r}",
            "raise the {r} {d} a bit",
            "turn the {r} {d} up",
        ],
        terse: &["{r} {d} up", "{d} up a bit"],
        indirect: &[
            (Some(Category::Light), "the {r} is too dim"),
            (Some(Category::Speaker), "i can't hear the {d} in the {r}"),
            (Some(Category::Screen), "the {r} {d} is too quiet"),
        ],
        hard: &[
            "turn the {r} {d} up, not down",
            "don't turn the {r} {d} down, turn it up",
            "the {r} {d} is not loud enough",
        ],
        field: &[
            "crank up the {r} {d}",
            "bump the {d} in the {r} up",
            "a little more {d} in the {r}",
        ],
        response: "turning up the {d}{loc}.",
        question: false,
        report: false,
        lab_weight: 1.0,
        field_weight: 1.0,
    },
    IntentSpec {
        name: "level_down",
        target: Target::Dimmable,
        base: &[
            "turn down the {r} {d}",
            "decrease the {d} in the {r}",
            "lower the {r} {d} a bit",
            "turn the {r} {d} down",
        ],
        terse: &["{r} {d} down", "{d} down a bit"],
        indirect: &[
            (Some(Category::Speaker), "the {r} {d} is too loud"),
            (Some(Category::Light), "the {r} {d} is too bright"),
        ],
        hard: &[
            "turn the {r} {d} down, not up",
            "don't turn the {r} {d} up, turn it down",
            "the {r} {d} is loud enough",
        ],
        field: &[
            "tone down the {r} {d}",
            "bring the {d} in the {r} down",
            "a little less {d} in the {r}",
        ],
        response: "turning down the {d}{loc}.",
        question: false,
        report: false,
        lab_weight: 1.0,
        field_weight: 1.0,
    },
    IntentSpec {
        name: "set_temperature",
        target: Target::Thermal,
        base: &[
            "set the {r} {d} to {t} degrees",
            "change the {d} in the {r} to {t}",
            "i want the {r} at {t} degrees",
            "set the {r} temperature to {t}",
        ],
        terse: &["{r} {d} {t} degrees", "{t} degrees {r}"],
        indirect: NO_INDIRECT,
        hard: &["not {t2}, set the {r} {d} to {t} degrees"],
        field: &[
            "make it {t} degrees in the {r}",
            "hold the {r} at {t}",
            "{t} on the {r} {d}",
        ],
        response: "setting the {d}{loc} to {t} degrees.",
        question: false,
        report: false,
        lab_weight: 1.0,
        field_weight: 1.0,
    },
    IntentSpec {
        name: "temperature_up",
        target: Target::Thermal,
        base: &[
            "make the {r} warmer",
            "turn up the heat in the {r}",
            "raise the {r} temperature",
            "warm up the {r}",
        ],
        terse: &["{r} warmer", "warmer in the {r}"],
        indirect: &[
            (None, "it's freezing in the {r}"),
            (None, "it's too cold in the {r}"),
            (None, "the {r} is chilly"),
        ],
        hard: &[
            "make the {r} warmer, not colder",
            "don't cool the {r}, warm it up",
            "it's not warm enough in the {r}",
        ],
        field: &[
            "heat the {r} up a touch",
            "the {r} needs to be toastier",
            "bump the {r} heat",
        ],
        response: "raising the temperature{loc}.",
        question: false,
        report: false,
        lab_weight: 0.8,
        field_weight: 1.4,
    },
    IntentSpec {
        name: "temperature_down",
        target: Target::Thermal,
        base: &[
            "make the {r} cooler",
            "turn down the heat in the {r}",
            "lower the {r} temperature",
            "cool down the {r}",
        ],
        terse: &["{r} cooler", "cooler in the {r}"],
        indirect: &[
            (None, "it's too hot in the {r}"),
            (None, "it's boiling in the {r}"),
            (None, "the {r} is stuffy"),
        ],
        hard: &[
            "make the {r} colder, not warmer",
            "don't warm the {r}, cool it down",
            "it's warm enough in the {r}",
        ],
        field: &[
            "chill the {r} a bit",
            "the {r} needs to be cooler",
            "take the {r} heat down",
        ],
        response: "lowering the temperature{loc}.",
        question: false,
        report: false,
        lab_weight: 0.8,
        field_weight: 1.4,
    },
    IntentSpec {
        name: "query_state",
        target: Target::Switchable,
        base: &[
            "is the {r} {d} on",
            "is the {r} {d} off",
            "is the {d} in the {r} still on",
            "did i leave the {r} {d} on",
            "is the {r} {d} on or off",
        ],
        terse: &["{r} {d} on", "{r} {d} status"],
        indirect: &[(None, "i wonder if the {r} {d} is still on")],
        hard: &["is the {r} {d} not on", "is the {r} {d} still off"],
        field: &[
            "any idea if the {r} {d} is on",
            "check whether the {r} {d} is running",
            "tell me if the {d} in the {r} is off",
        ],
        response: "checking the {d}{loc}.",
        question: true,
        report: false,
        lab_weight: 1.0,
        field_weight: 1.5,
    },
    IntentSpec {
        name: "query_temperature",
        target: Target::None,
        base: &[
            "what's the temperature in the {r}",
            "how warm is the {r}",
            "how cold is it in the {r}",
            "what is the {r} thermostat set to",
        ],
        terse: &["{r} temperature", "temp in the {r}"],
        indirect: &[
            (None, "is it warm in the {r}"),
            (None, "is it too cold in the {r}"),
        ],
        hard: &["is the {r} warm enough"],
        field: &[
            "how toasty is the {r}",
            "read me the {r} temperature",
            "what does the {r} sensor say",
        ],
        response: "reading the temperature{loc}.",
        question: true,
        report: false,
        lab_weight: 0.8,
        field_weight: 1.0,
    },
    IntentSpec {
        name: "status_on",
        target: Target::Switchable,
        base: &[
            "the {r} {d} is on",
            "the {r} {d} was turned on",
            "{r} {d} switched on at {time}",
            "the {d} in the {r} is now on",
            "the {d} in the {r} is still on",
        ],
        terse: &["{r} {d}: on", "{d} on ({r})"],
        indirect: NO_INDIRECT,
        hard: &["the {r} {d} is not off", "the {r} {d} is on or off"],
        field: &[
            "{r} {d} powered up",
            "{r} {d} came on",
            "{r} {d} running since {time}",
        ],
        response: "noted: the {d}{loc} is on.",
        question: false,
        report: true,
        lab_weight: 0.8,
        field_weight: 1.2,
    },
    IntentSpec {
        name: "status_off",
        target: Target::Switchable,
        base: &[
            "the {r} {d} is off",
            "the {r} {d} was turned off",
            "{r} {d} switched off at {time}",
            "the {d} in the {r} is now off",
            "the {d} in the {r} is still off",
        ],
        terse: &["{r} {d}: off", "{d} off ({r})"],
        indirect: NO_INDIRECT,
        hard: &["the {r} {d} is not on", "the {r} {d} is off, not on"],
        field: &[
            "{r} {d} powered down",
            "{r} {d} went off",
            "{r} {d} idle since {time}",
        ],
        response: "noted: the {d}{loc} is off.",
        question: false,
        report: true,
        lab_weight: 0.8,
        field_weight: 1.2,
    },
    IntentSpec {
        name: "status_fault",
        target: Target::Any,
        base: &[
            "the {r} {d} is offline",
            "{r} {d} battery low",
            "the {d} in the {r} is not responding",
            "{r} {d} reported an error",
            "lost connection to the {r} {d}",
        ],
        terse: &["{r} {d}: offline", "{d} error ({r})"],
        indirect: NO_INDIRECT,
        hard: &[
            "the {r} {d} is on but not responding",
            "the {r} {d} is off and offline",
        ],
        field: &[
            "{r} {d} firmware update failed",
            "{r} {d} keeps disconnecting",
            "{r} {d} overheating warning",
        ],
        response: "logged a fault for the {d}{loc}.",
        question: false,
        report: true,
        lab_weight: 0.6,
        field_weight: 2.0,
    },
    IntentSpec {
        name: "schedule_on",
        target: Target::Switchable,
        base: &[
            "turn on the {r} {d} at {time}",
            "switch the {r} {d} on in {dur}",
            "at {time} turn on the {d} in the {r}",
            "schedule the {r} {d} to come on at {time}",
        ],
        terse: &["{r} {d} on at {time}", "{d} on in {dur}"],
        indirect: &[(Some(Category::Appliance), "i want the {d} ready by {time}")],
        hard: &[
            "don't turn off the {r} {d} at {time}, turn it on",
            "at {time} the {r} {d} should be on, not off",
        ],
        field: &[
            "have the {r} {d} start at {time}",
            "queue the {d} in the {r} for {time}",
        ],
        response: "the {d}{loc} will turn on at the requested time.",
        question: false,
        report: false,
        lab_weight: 0.8,
        field_weight: 0.6,
    },
    IntentSpec {
        name: "schedule_off",
        target: Target::Switchable,
        base: &[
            "turn off the {r} {d} at {time}",
            "switch the {r} {d} off in {dur}",
            "at {time} turn off the {d} in the {r}",
            "schedule the {r} {d} to go off at {time}",
        ],
        terse: &["{r} {d} off at {time}", "{d} off in {dur}"],
        indirect: &[(None, "i'll be asleep by {time}, the {r} {d} can stop then")],
        hard: &[
            "don't turn on the {r} {d} at {time}, turn it off",
            "at {time} the {r} {d} should be off, not on",
        ],
        field: &[
            "have the {r} {d} stop at {time}",
            "sleep timer on the {r} {d} for {dur}",
        ],
        response: "the {d}{loc} will turn off at the requested time.",
        question: false,
        report: false,
        lab_weight: 0.8,
        field_weight: 0.6,
    },
    IntentSpec {
        name: "set_timer",
        target: Target::None,
        base: &[
            "set a timer for {dur}",
            "start a {dur} timer",
            "time {dur} for me",
            "set a {dur} timer in the {r}",
        ],
        terse: &["timer {dur}", "{dur} timer"],
        indirect: &[(None, "the pasta needs {dur}")],
        hard: &["don't cancel the timer, set it for {dur}"],
        field: &[
            "count down {dur}",
            "remind me in {dur}",
            "give me a {dur} countdown",
        ],
        response: "timer set for {dur}.",
        question: false,
        report: false,
        lab_weight: 0.8,
        field_weight: 0.6,
    },
    IntentSpec {
        name: "cancel_timer",
        target: Target::None,
        base: &[
            "cancel the timer",
            "stop the {dur} timer",
            "turn off the timer",
            "delete the timer in the {r}",
        ],
        terse: &["timer off", "no timer"],
        indirect: &[(None, "i don't need the timer anymore")],
        hard: &["don't set a timer for {dur}, cancel it"],
        field: &[
            "scrap the countdown",
            "kill the timer",
            "forget the {dur} countdown",
        ],
        response: "timer cancelled.",
        question: false,
        report: false,
        lab_weight: 0.6,
        field_weight: 0.5,
    },
    IntentSpec {
        name: "set_alarm",
        target: Target::None,
        base: &[
            "set an alarm for {time}",
            "wake me up at {time}",
            "add an alarm at {time}",
            "i need an alarm for {time}",
        ],
        terse: &["alarm {time}", "alarm at {time}"],
        indirect: &[(None, "i have to be up by {time}")],
        hard: &["don't cancel my {time} alarm, set it"],
        field: &["get me up at {time}", "ring me at {time}"],
        response: "alarm set for {time}.",
        question: false,
        report: false,
        lab_weight: 0.8,
        field_weight: 0.6,
    },
    IntentSpec {
        name: "cancel_alarm",
        target: Target::None,
        base: &[
            "cancel my {time} alarm",
            "turn off the alarm",
            "delete the alarm for {time}",
            "remove the {time} alarm",
        ],
        terse: &["alarm off", "no alarm {time}"],
        indirect: &[(
            None,
            "i can sleep in tomorrow, no need to wake me at {time}",
        )],
        hard: &["don't set an alarm for {time}, cancel it"],
        field: &["scrap my {time} wake-up", "no wake-up call at {time}"],
        response: "alarm cancelled.",
        question: false,
        report: false,
        lab_weight: 0.6,
        field_weight: 0.5,
    },
    IntentSpec {
        name: "lock",
        target: Target::Door,
        base: &[
            "lock the {d}",
            "lock up the {d}",
            "make sure the {d} is locked",
            "secure the {d}",
        ],
        terse: &["{d} lock", "lock {d}"],
        indirect: &[(None, "we're going to bed, is the {d} open")],
        hard: &[
            "lock the {d}, don't unlock it",
            "no, don't unlock the {d}, lock it",
        ],
        field: &[
            "bolt the {d}",
            "deadlock the {d}",
            "the {d} should be locked now",
        ],
        response: "locking the {d}.",
        question: false,
        report: false,
        lab_weight: 0.8,
        field_weight: 0.8,
    },
    IntentSpec {
        name: "unlock",
        target: Target::Door,
        base: &[
            "unlock the {d}",
            "open the lock on the {d}",
            "let me in through the {d}",
            "release the {d} lock",
        ],
        terse: &["{d} unlock", "unlock {d}"],
        indirect: &[(None, "the guests are waiting at the {d}")],
        hard: &[
            "unlock the {d}, don't lock it",
            "no, don't lock the {d}, unlock it",
        ],
        field: &[
            "buzz the {d} open",
            "unbolt the {d}",
            "the {d} should be unlocked now",
        ],
        response: "unlocking the {d}.",
        question: false,
        report: false,
        lab_weight: 0.8,
        field_weight: 0.8,
    },
    IntentSpec {
        name: "open_cover",
        target: Target::Cover,
        base: &[
            "open the {r} {d}",
            "raise the {r} {d}",
            "pull up the {d} in the {r}",
            "open the {d} in the {r} halfway",
        ],
        terse: &["{r} {d} open", "{d} up"],
        indirect: &[(None, "let some light into the {r}")],
        hard: &[
            "open the {r} {d}, don't close them",
            "the {r} {d} should be open, not closed",
        ],
        field: &["roll up the {r} {d}", "retract the {d} in the {r}"],
        response: "opening the {d}{loc}.",
        question: false,
        report: false,
        lab_weight: 0.8,
        field_weight: 0.8,
    },
    IntentSpec {
        name: "close_cover",
        target: Target::Cover,
        base: &[
            "close the {r} {d}",
            "lower the {r} {d}",
            "draw the {d} in the {r}",
            "shut the {d} in the {r}",
        ],
        terse: &["{r} {d} closed", "{d} down"],
        indirect: &[(None, "the sun is glaring into the {r}")],
        hard: &[
            "close the {r} {d}, don't open them",
            "the {r} {d} should be closed, not open",
        ],
        field: &["roll down the {r} {d}", "extend the {d} in the {r}"],
        response: "closing the {d}{loc}.",
        question: false,
        report: false,
        lab_weight: 0.8,
        field_weight: 0.8,
    },
    IntentSpec {
        name: "start_cleaning",
        target: Target::Vacuum,
        base: &[
            "start the {d} in the {r}",
            "vacuum the {r}",
            "clean the {r} floor",
            "send the {d} to the {r}",
        ],
        terse: &["clean {r}", "{d} go"],
        indirect: &[
            (None, "the {r} floor is dirty"),
            (None, "there are crumbs all over the {r}"),
        ],
        hard: &["don't stop the {d}, let it clean the {r}"],
        field: &["run a cleaning cycle in the {r}", "have the {d} do the {r}"],
        response: "starting the {d}{loc}.",
        question: false,
        report: false,
        lab_weight: 0.7,
        field_weight: 0.6,
    },
    IntentSpec {
        name: "stop_cleaning",
        target: Target::Vacuum,
        base: &[
            "stop the {d}",
            "send the {d} back to its dock",
            "pause the cleaning in the {r}",
            "stop vacuuming the {r}",
        ],
        terse: &["{d} stop", "{d} dock"],
        indirect: &[(None, "the {d} is too noisy, we're on a call in the {r}")],
        hard: &["don't start the {d} in the {r}, stop it"],
        field: &["park the {d}", "call the {d} home"],
        response: "stopping the {d}.",
        question: false,
        report: false,
        lab_weight: 0.7,
        field_weight: 0.6,
    },
    IntentSpec {
        name: "play_media",
        target: Target::Media,
        base: &[
            "play music in the {r}",
            "play some jazz on the {r} {d}",
            "resume the {d} in the {r}",
            "start the playlist on the {r} {d}",
        ],
        terse: &["{r} {d} play", "music {r}"],
        indirect: &[(None, "it's too quiet in the {r}, put something on")],
        hard: &["don't pause the {r} {d}, play it"],
        field: &[
            "queue up some tunes in the {r}",
            "throw on a podcast on the {r} {d}",
        ],
        response: "playing on the {d}{loc}.",
        question: false,
        report: false,
        lab_weight: 0.8,
        field_weight: 0.6,
    },
    IntentSpec {
        name: "pause_media",
        target: Target::Media,
        base: &[
            "pause the {r} {d}",
            "stop the music in the {r}",
            "pause the music on the {d}",
            "hold the {d} in the {r}",
        ],
        terse: &["{r} {d} pause", "pause {d}"],
        indirect: &[(None, "the phone is ringing, quiet the {r} {d}")],
        hard: &["don't play the {r} {d}, pause it"],
        field: &["hush the {r} {d}", "freeze the show on the {r} {d}"],
        response: "pausing the {d}{loc}.",
        question: false,
        report: false,
        lab_weight: 0.8,
        field_weight: 0.6,
    },
];

/// Intent labels, in table order.
pub fn intent_names() -> Vec<&'static str> {
    INTENTS.iter().map(|i| i.name).collect()
}
