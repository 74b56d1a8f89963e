"""The fixed instructions functionary v3.1's template writes after its tool definitions (Go text of
the "functionary-v3.1" tool layout in edgepack.chat.tools.layouts, kept here for its length)."""

FUNCTIONARY_V31_RULES = (
    '\n'
    'Think very carefully before calling functions.\n'
    'If a you choose to call a function ONLY reply in the following format:\n'
    '<{start_tag}={function_name}>{parameters}{end_tag}\n'
    'where\n'
    '\n'
    'start_tag => `<function`\n'
    'parameters => a JSON dict with the function argument name as key and function argument value as value.\n'
    'end_tag => `</function>`\n'
    '\n'
    'Here is an example,\n'
    '<function=example_function_name>{"example_name": "example_value"}</function>\n'
    '\n'
    'Reminder:\n'
    '- If looking for real time information use relevant functions before falling back to brave_search\n'
    '- Function calls MUST follow the specified format, start with <function= and end with </function>\n'
    '- Required parameters MUST be specified\n'
    '- Only call one function at a time\n'
    '- Put the entire function call reply on one line\n'
    '\n'
)
