"""The prompt the robot-dog model was trained with; training, export and runtime all take it from here."""

# Short on purpose: every prompt token is paid for on every command on the robot.
SYSTEM_PROMPT = "Convert the command to a robot-dog action program."


def chat_messages(text: str, system_prompt: str = SYSTEM_PROMPT) -> list[dict[str, str]]:
    """The chat messages for one command, in the form `tokenizer.apply_chat_template` takes."""
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": text}]
