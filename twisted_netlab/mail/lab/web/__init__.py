"""
The mail lab's web side on twisted.web: the HTTP API in Mailpit's v1 shape
(paths, parameters and JSON field names as in Mailpit's
C{server/ui/api/v1/swagger.json}) plus paths of our own, the message views,
and the live inbox page (C{static/}, package data: no build step).
Ours beside Mailpit's: C{/api/v1/wait} (a long poll), C{/api/v1/events}
(Server-Sent Events), C{/api/v1/mailboxes} and C{?mailbox=ADDRESS} on
lists, searches and waits; C{Mailbox} in summaries, C{Envelope} in the
detail.  Mailpit's tags, send, release, webui, thumbnails and C{/metrics}
are served as Mailpit serves them (C{docs/lab.rst} says where they differ).

Every request must name this server in its C{Host} (against DNS
rebinding), and a request that changes something is refused from another
C{Origin} (against CSRF).  Message HTML is only served with a
Content-Security-Policy that runs no script and loads nothing remote;
parts are always downloads.

The modules, from the bottom up:

  - L{policy}: the Content-Security-Policies and the headers every answer
    carries;
  - L{route}: L{Route<route.Route>}, the resource every path is (method
    dispatch, one-line 400/404/405 answers, Deferred answers), and the
    request's parameters and body;
  - L{shapes}: the JSON of messages (Mailpit's MessageSummary and Message,
    plus C{Mailbox} and C{Envelope});
  - L{events}: the event streams (Server-Sent Events) and
    C{/api/v1/events};
  - L{api}: L{LabAPI<api.LabAPI>}, what the routes share (the catalog,
    queries, pages, info, the event streams);
  - the route families, one module each:
      - L{messages}: C{/api/v1/messages}, C{/api/v1/search} and
        C{/api/v1/wait};
      - L{message}: C{/api/v1/message/{ID}} and its C{headers}, C{raw}
        and C{part/{PartID}} (and its C{thumb});
      - L{info}: C{/api/v1/info}, C{/api/v1/mailboxes},
        C{/api/v1/webui}, C{/livez} and C{/readyz};
      - L{tags}: C{/api/v1/tags} and C{/api/v1/tags/{Tag}};
      - L{sending}: C{/api/v1/send} (its request read by L{send}) and
        C{/api/v1/message/{ID}/release};
      - L{metrics}: C{/metrics} (Prometheus);
      - L{thumbnail}: the JPEG of C{/api/v1/message/{ID}/part/{PartID}/thumb}
        (a route of L{message});
      - L{unsubscribe}: Mailpit's check of List-Unsubscribe (the message
        answer's C{ListUnsubscribe});
      - L{checks}: the message checks below C{/api/v1/message/{ID}}
        (C{html-check}, C{link-check}, C{sa-check}, C{auth-check},
        C{lint});
      - L{views}: C{/view/{ID}.html} and C{/view/{ID}.txt};
      - L{chaos}: C{/api/v1/chaos} and C{/api/v1/faults}, over the lab's
        faults (mounted by the service);
  - L{v1}: C{/api/v1/}, where the families are registered;
  - L{guard}: the Host and Origin checks;
  - L{site}: the site (L{make_site<site.make_site>}): C{/api/}, the site's
    own paths, the inbox page's files, and the login off loopback.

A new family of routes is one new module and one line:

  - a family under C{/api/v1/} (C{tags}, C{send}, C{webui}): a module
    with a L{Route<route.Route>} subclass made from the L{LabAPI<api.LabAPI>}
    (C{render_GET}, C{render_PUT}... and, for C{/api/v1/tags/{Tag}},
    a C{getChild} that makes a route per name), registered by a line in
    L{v1.ROUTES}: C{"tags": TagsRoute,};
  - a path below one message (C{release}, C{html-check}, C{link-check},
    C{sa-check}, C{auth-check}, C{lint}): a L{MessageRoute<message.MessageRoute>}
    subclass, made from the API and the message's ID (its C{entry()} and
    C{parsed()} look the message up), registered by a line in
    L{v1.MESSAGE_ROUTES}: C{"lint": LintRoute,}.  A path below a part
    (C{part/{PartID}/thumb}) is a child of L{PartRoute<message.PartRoute>};
  - a path of the site beside C{/api/} (C{/metrics}): a line in
    L{site.SITE_ROUTES}; it is behind the same Host checks.
"""
