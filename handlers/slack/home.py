"""The App Home: its opening, and its Acknowledge button."""

from voisobot.slack.home import HOME_ACK_ACTION, AppHome

from .actions import press_of


def register(app, app_home: AppHome) -> None:
    def opened(event):
        if event.get("tab") == "home" and isinstance(event.get("user"), str):
            app_home.opened(event["user"])  # the Messages tab opens too: nothing to publish

    def acknowledge(ack, body, action):
        ack()
        press = press_of(body, action)
        app_home.press(press.user_id, press.value, press.user_name)

    app.event("app_home_opened")(opened)
    app.action(HOME_ACK_ACTION)(acknowledge)
