"""`kansrijk demo` refused for a vhost another system uses says how to give it one of its own."""

from __future__ import annotations

from tools.demo import own_vhost


def test_the_advice_is_the_exact_commands_and_url_on_the_same_broker() -> None:
    assert own_vhost("amqp://guest:guest@127.0.0.1:5672/") == (
        "  rabbitmqctl add_vhost kansrijk-demo\n"
        "  rabbitmqctl set_permissions -p kansrijk-demo guest '.*' '.*' '.*'\n"
        "  export KANSRIJK_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/kansrijk-demo"
    )
    assert own_vhost("amqp://localhost").endswith("KANSRIJK_AMQP_URL=amqp://guest:guest@localhost:5672/kansrijk-demo")


def test_a_real_password_is_never_shown_and_a_demo_vhost_in_use_gets_another() -> None:
    advice = own_vhost("amqps://ops:geheim@mq.example.nl/kansrijk-demo")
    assert "geheim" not in advice
    assert advice.splitlines() == [
        "  rabbitmqctl add_vhost kansrijk-demo-2",
        "  rabbitmqctl set_permissions -p kansrijk-demo-2 ops '.*' '.*' '.*'",
        "  export KANSRIJK_AMQP_URL=amqps://ops:<password>@mq.example.nl:5671/kansrijk-demo-2",
    ]
