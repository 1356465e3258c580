"""Frames that only the train side draws: more openers, closers and refusal sentences, so that the model learns that
words around a command (pleasantries, names, urgency) add no step, and that a command word inside an impossible or
unsafe request ("坐飞机去北京", "jump in the car") is no command.

They are appended to the train side of their pool (`generator._Draw.frame`). The dev and test splits never draw them,
so those splits stay byte-identical; `generator.check_pools` refuses any item here that is already in its pool.
Keys are pool names as `generator.phrasing_pools` spells them, per language.
"""

from __future__ import annotations

EN: dict[str, list[str]] = {
    "OPENERS": [
        "hey champ,", "champ,", "hey boy,", "hey girl,", "listen up,", "attention,", "ready?", "okay doggy,",
        "alright pup,", "hey sweetie,", "hi there,", "hello robot,", "hi dog,", "so I was thinking,",
        "if it's not too much trouble,", "one more thing,", "next up,", "for the next one,", "real quick,",
        "now listen,", "hey listen,", "look,", "ok so,", "yeah so,", "well then,", "mate,", "hey mate,", "dude,",
        "bro,", "buddy boy,", "little guy,", "my friend,", "old boy,", "hey fella,", "fido,", "hey spot,",
        "you there,", "lassie,", "rex, buddy,", "good pup,", "sweet dog,", "be nice and", "be a pal and",
        "do us a favour and", "could ya", "can ya", "would ya", "gonna need you to", "I want to see you",
        "I wanna see you", "let's see you", "show me how you", "time to show me you can", "please just",
        "just quickly", "quickly,", "carefully now,", "gently now,", "slowly now,", "hey robo,", "okay okay,",
        "right right,", "so basically", "basically,", "honestly, just", "go on then,", "on you go,",
        "whenever you like,", "in a sec,", "first of all,",
    ],
    "CLOSERS": [
        "if that's okay", "if that's alright", "if you want", "if you like", "ok thanks", "okay thanks",
        "thank you so much", "much appreciated", "appreciate it", "many thanks", "cheers buddy", "ta very much",
        "good dog", "good pup", "good job", "well done", "attaboy", "atta girl", "that's my boy", "that's my girl",
        "there you go", "off you go", "on you go", "go on then", "go ahead", "let's go", "let's see it",
        "show me", "do it", "do it now", "go for it", "make it quick", "right this second", "straight away",
        "as fast as you can", "nice and steady", "with style", "like a pro", "for me please", "for grandma",
        "for the guests", "for everyone", "my dear", "my good boy", "little buddy", "champ", "sport", "fella",
        "rex", "spot", "you silly dog", "you goof", "lol", "haha", "hehe", "yay", "woohoo", "ok bye", "thx",
        "pls", "plz", "kthx", "no pressure", "when ready", "at your own pace", "in your own time", "i guess",
        "i think", "maybe", "if possible", "ok cool", "cool", "awesome", "great", "nice", "sweet",
        "okay great", "okay good",
    ],
    "reject.vehicle": [
        "jump in the car and drive to {dest}", "hop on the bus to {dest}", "sit in the car and take me to {dest}",
        "catch a plane to {dest}", "ride the train to {dest}", "steer the boat to {dest}",
        "turn the car around and go to {dest}", "drive forward to {dest}", "back the car out of the garage",
        "take an uber to {dest}",
    ],
    "reject.fly": [
        "jump up and fly to the {place}", "turn into a bird and fly away", "take a leap and soar to the {place}",
        "sit on a cloud above the {place}", "float over to the {place}", "flap your ears and fly",
        "glide down from the {place}", "rise up into the air",
    ],
    "reject.impossible": [
        "sit on the moon", "turn into a cat and sit", "walk through the wall", "jump over the house",
        "dance on the ceiling", "stand on your head for an hour", "walk on water to {dest}",
    ],
}  # fmt: skip

ZH: dict[str, list[str]] = {
    "OPENERS": [
        "嘿狗狗", "小狗乖", "听着", "注意", "准备好了吗", "好啦好啦", "那个", "这个", "嗯", "我想让你", "我想看你",
        "给我看看你", "让我看看你", "来来", "宝宝", "乖宝", "小宝贝", "狗宝宝", "机器人", "小机器人", "阿黄",
        "大黄", "小花", "毛毛", "你快", "你现在", "你马上", "你赶紧", "你给我快点", "你帮我", "帮忙", "行行好",
        "辛苦一下", "麻烦你了", "请你马上", "能否", "能麻烦你", "你能否", "可以的话", "方便的话", "有空的话",
        "下一个", "接下来", "好了现在", "好的", "那么", "那就", "先别急", "慢慢来",
    ],
    "CLOSERS": [
        "谢谢你", "谢谢哦", "谢了", "感谢", "多谢啦", "好吧", "行吧", "可以吧", "对吧", "是吧", "呢", "哟", "哇",
        "嘿嘿", "哈哈", "好嘞", "走起", "来吧", "开始吧", "去吧", "快去", "加油", "棒棒的", "真乖", "好狗狗",
        "好孩子", "乖孩子", "小心点", "慢慢来", "别着急", "不着急", "越快越好", "现在就", "就现在", "马上就",
        "立刻马上", "给我看看", "让我看看", "好不好呀", "行不行啊", "可以不可以", "拜托了", "求求你", "亲",
        "宝贝儿", "乖乖哦",
    ],
    "reject.vehicle": [
        "坐飞机去{dest}", "坐船去{dest}", "坐地铁去{dest}", "坐出租车去{dest}", "开着车去{dest}", "骑着自行车去{dest}",
        "坐高铁去{dest}", "开船去{dest}", "坐到车里开去{dest}", "跳上车去{dest}", "把车倒出车库", "开卡车去{dest}",
    ],
    "reject.fly": [
        "跳起来飞到{place}", "变成小鸟飞走", "坐在云上", "飞着转一圈", "飞到{place}上坐下", "扑腾翅膀飞起来",
        "从{place}上飞下来", "升到空中", "飞过去", "像超人一样飞",
    ],
    "reject.impossible": [
        "坐在月亮上", "变成猫然后坐下", "穿过墙走过去", "跳过房子", "在天花板上跳舞", "倒立一个小时",
        "在水面上走到{dest}", "跳到房顶上", "飞起来转圈",
    ],
}  # fmt: skip

# the Chinese openers above that address the dog, so politeness stacking may put them before any command
ZH_VOCATIVES = (
    "嘿狗狗",
    "小狗乖",
    "宝宝",
    "乖宝",
    "小宝贝",
    "狗宝宝",
    "机器人",
    "小机器人",
    "阿黄",
    "大黄",
    "小花",
    "毛毛",
)

TRAIN_ONLY: dict[str, dict[str, list[str]]] = {"en": EN, "zh": ZH}

# Drawn from generator seed AUGMENTED_FROM_SEED on (`generator.draw_more_training`); earlier seeds were drawn without
# them, so the stages that trained on those still reproduce. Frames added to pools, as TRAIN_ONLY's: here, sequences
# whose program order is not the order of the words ("before you dance, stretch" is stretch; dance).
AUGMENTED_FRAMES: dict[str, dict[str, list[str]]] = {
    "en": {"SEQ2_FRAMES": ["{0} before you {1}", "before you {1}, {0} first", "{0}, and only then {1}"]},
    "zh": {"SEQ2_FRAMES": ["{1}之前先{0}", "在{1}之前先{0}", "{1}以前先{0}", "先{0}再{1}"]},
}

# Also from AUGMENTED_FROM_SEED on: a step repeated a counted number of times ("jump forward three times" is three jumps; "bark three times" stays
# `bark n=3`): {0} is the step, {n} the count in words or digits.
REPEAT_COUNT_FRAMES: dict[str, list[str]] = {
    "en": ["{0} {n} times", "{0}, {n} times", "{0} {n} times in a row", "{0} {n} times please",
           "{0}, {n} times over", "{0} and repeat until you've done it {n} times"],
    "zh": ["{0}{n}次", "连续{0}{n}次", "{0}{n}遍", "{0}，来{n}遍", "{0}，做{n}次", "连着{0}{n}下"],
}  # fmt: skip
REPEAT_COUNT_WORDS = {
    "en": {3: ("three", "3", "three"), 4: ("four", "4")},
    "zh": {3: ("三", "3"), 4: ("四", "4")},
}
